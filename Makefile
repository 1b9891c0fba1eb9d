# chainml: the two commands a newcomer needs are `make demo` and `make test`.
# `make setup` is idempotent: it only redoes a step whose inputs changed (stamp files).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.chainml-installed
NPM_STAMP := node_modules/.chainml-installed
SOLC_STAMP := .toolchain/solcx/.chainml-installed
# Contracts are compiled once, here, never at run time: ABI + bytecode as package data.
ARTIFACTS_STAMP := chainml/chain/artifacts/manifest.json
CONTRACT_SOURCES := $(shell find contracts -name '*.sol')
DATA_DIR ?= $(CURDIR)/.chainml
PYTEST_ARGS ?=

.PHONY: help setup browser mcu-toolchain demo test bench bench-setup deploy lint lock lock-flower down clean

help:
	@echo "make demo   - set up, start a local chain + IPFS, deploy the contracts, run the demo"
	@echo "make test   - set up, then run the whole test suite"
	@echo "make setup  - install the pinned Python and npm toolchain (idempotent)"
	@echo "make bench  - run every bench/*.py (after bench-setup: Flower, the peer bench's baseline)"
	@echo "make down   - stop the chain and IPFS node that the demo started"

setup: $(PY_STAMP) $(NPM_STAMP) $(SOLC_STAMP) $(ARTIFACTS_STAMP) browser mcu-toolchain
	@echo "setup: ok ($(VENV), node_modules, solc adapter, compiled contracts, chromium, Cortex-M4 toolchain + QEMU)"

# Headless Chromium + ChromeDriver (Debian packages) for the report's browser test.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then :; else \
	  echo "[setup 5/6] chromium + chromium-driver (Debian) for the report's browser test"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null; \
	fi

# Cortex-M4 cross compiler, newlib and QEMU's mps2-an386 board (Debian packages) for
# `chainml export`, bench/mcu.py and tests/mcu; gcc (host) builds QEMU's instruction counter.
mcu-toolchain:
	@if [ -x /usr/bin/arm-none-eabi-gcc ] && [ -x /usr/bin/qemu-system-arm ] && [ -x /usr/bin/gcc ] \
	  && [ -d /usr/lib/arm-none-eabi/newlib ]; then :; else \
	  echo "[setup 6/6] gcc-arm-none-eabi + libnewlib-arm-none-eabi + qemu-system-arm (Debian) for MCU export"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends gcc gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm >/dev/null; \
	fi

$(PY_STAMP): pyproject.toml requirements.lock
	@echo "[setup 1/6] Python packages into $(VENV) (pinned by requirements.lock)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --upgrade-strategy only-if-needed -c requirements.lock -e '.[dev]' | grep -v -E '^(Requirement already satisfied|  Using cached|WARNING: Location)' || true
	@$(PY) -c "import chainml, torch, brownie" && touch $@

$(NPM_STAMP): package.json package-lock.json
	@echo "[setup 2/6] npm packages into node_modules (pinned by package-lock.json)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(SOLC_STAMP): $(PY_STAMP) $(NPM_STAMP) node/solc-adapter.js chainml/toolchain.py
	@echo "[setup 3/6] solc-js adapter for py-solc-x and brownie"
	$(PY) -m chainml.toolchain
	@touch $@

# `brownie compile` (the one compile pipeline; brownie's build is what `brownie run` deploys),
# then the deployable contracts' ABI + bytecode into chainml/chain/artifacts (manifest last).
$(ARTIFACTS_STAMP): $(SOLC_STAMP) $(CONTRACT_SOURCES) brownie-config.yaml package.json chainml/chain/compile.py
	@echo "[setup 4/6] compile contracts/ with brownie into chainml/chain/artifacts"
	$(PY) -m chainml.chain.compile

demo: setup
	$(VENV)/bin/chainml --data-dir $(DATA_DIR) demo

deploy: setup
	$(VENV)/bin/chainml --data-dir $(DATA_DIR) deploy

test: setup
	$(VENV)/bin/pytest $(PYTEST_ARGS)

bench: setup bench-setup
	$(PY) -m chainml.benchtable

# Flower's simulation, the baseline of bench/peer_flower.py, in a venv of its own:
# flwr[simulation]==1.42.0 pins ray==2.55.1, which cannot share chainml's ray==2.60.0.
FLOWER_VENV := .venv-flower
FLOWER_STAMP := $(FLOWER_VENV)/.chainml-installed
bench-setup: $(FLOWER_STAMP)

$(FLOWER_STAMP): bench/flower/requirements.lock
	@echo "[bench-setup] flwr[simulation]==1.42.0 into $(FLOWER_VENV) (pinned by bench/flower/requirements.lock)"
	@test -x $(FLOWER_VENV)/bin/python || $(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_VENV)/bin/python -m pip install --progress-bar off -r bench/flower/requirements.lock | grep -v -E '^(Requirement already satisfied|  Using cached|WARNING: Location)' || true
	@$(FLOWER_VENV)/bin/python -c "import flwr, ray, torch" && touch $@

lint: setup
	$(VENV)/bin/ruff check chainml tests bench scripts
	$(VENV)/bin/ruff format --check chainml tests bench scripts

lock: $(PY_STAMP)
	@{ echo "# Exact versions for every Python package chainml installs (pip constraints for make setup)."; \
	   echo "# Regenerate with: make lock"; \
	   $(PY) -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > requirements.lock

lock-flower: $(FLOWER_STAMP)
	@{ echo "# Exact versions for Flower's simulation, bench/peer_flower.py's peer (its own venv, .venv-flower:"; \
	   echo "# flwr[simulation]==1.42.0 pins ray==2.55.1, which cannot share chainml's venv and its ray==2.60.0)."; \
	   echo "# Installed by: make bench-setup. Regenerate with: make lock-flower"; \
	   $(FLOWER_VENV)/bin/python -m pip freeze --exclude-editable | sed 's/^torch==\(.*\)+cpu$$/torch==\1/'; } > bench/flower/requirements.lock

down:
	-$(VENV)/bin/chainml --data-dir $(DATA_DIR) chain down
	-$(VENV)/bin/chainml --data-dir $(DATA_DIR) ipfs down

clean: down
	rm -rf $(VENV) $(FLOWER_VENV) node_modules .toolchain build chainml/chain/artifacts
