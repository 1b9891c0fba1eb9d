"""The swarm's connections: chain, deployment, store, and the service accounts it acts as.

If the data directory has no deployment on this chain yet, the swarm deploys one whose genesis
version is the seeded initial model of the run's task, so a fresh ``chainml swarm run`` needs no
other step. A deployment whose current weights are for another model is refused clearly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from web3 import Web3

from chainml.chain.client import Ledger, http_web3
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import (
    Deployments,
    deployments_path,
    load_deployments,
    save_deployments,
)
from chainml.chain.errors import chain_errors
from chainml.errors import ChainError, ConfigError, ServiceError, StorageError
from chainml.meta.models import get_model
from chainml.meta.recipe import Recipe
from chainml.meta.tasks import get_family
from chainml.protocol.payloads import encode_weights, version_recipe, weights_arch
from chainml.services.chain import LocalChain
from chainml.storage.cid import cid_to_onchain, onchain_to_str
from chainml.storage.store import Store, StoreUnavailableError, open_store
from chainml.swarm.fleet import GATEWAY_ACCOUNT_INDEX

DEFAULT_VALIDATORS = 3


@dataclass
class Services:
    rpc_url: str
    w3: Web3
    ledger: Ledger
    deployments: Deployments
    store: Store
    store_spec: str
    data_dir: Path
    admin: str
    aggregator: str
    validators: list[str]
    gateway: str
    checkpoint: Callable[[], object] = lambda: None
    """Make the chain's state durable now (the local Anvil's state file); no-op elsewhere."""


def genesis_weights(task: str, seed: int, recipe: Recipe | None = None) -> tuple[bytes, str]:
    """The seeded initial model of ``task`` with the learning recipe every later version follows
    (default: the task family's, :meth:`Recipe.for_family`): the version file's bytes and
    architecture id."""
    arch = get_family(task).default_arch
    recipe = recipe or Recipe.for_family(task)
    return encode_weights(get_model(arch).init(seed), arch, recipe=recipe), arch


def connect(
    rpc_url: str,
    data_dir: Path,
    store_spec: str,
    *,
    task: str,
    seed: int,
    validators: int = DEFAULT_VALIDATORS,
    recipe: Recipe | None = None,
) -> Services:
    w3 = http_web3(rpc_url, timeout=120)
    if not w3.is_connected():
        raise ChainError(f"no chain answers at {rpc_url}; start it with `chainml chain up`")
    store = open_store(store_spec, data_dir)
    with chain_errors(rpc_url):
        accounts = list(w3.eth.accounts)
        if len(accounts) <= GATEWAY_ACCOUNT_INDEX:
            raise ChainError(
                f"the chain at {rpc_url} unlocks {len(accounts)} accounts; the swarm needs "
                f"{GATEWAY_ACCOUNT_INDEX + 1} (a local Anvil or Ganache chain)"
            )
        deployments = _deployment(w3, data_dir, store, task, seed, validators, recipe)
        ledger = Ledger.from_deployments(w3, deployments)
        _check_current_weights(ledger, store, task, recipe)
    extra = deployments.extra
    role_validators = [str(v) for v in extra.get("validators", [])]  # type: ignore[union-attr]
    aggregators = [str(a) for a in extra.get("aggregators", [])]  # type: ignore[union-attr]
    if not role_validators or not aggregators:
        raise ConfigError(
            f"{deployments_path(data_dir)} names no aggregator or validators; redeploy"
        )
    local = LocalChain(data_dir)
    info = local.info()
    checkpoint = _checkpointer(local, rpc_url) if info is not None and info.url == rpc_url else (
        lambda: None
    )  # fmt: skip
    checkpoint()
    return Services(
        checkpoint=checkpoint,
        rpc_url=rpc_url,
        w3=w3,
        ledger=ledger,
        deployments=deployments,
        store=store,
        store_spec=store_spec,
        data_dir=data_dir,
        admin=str(extra.get("admin", deployments.deployer)),
        aggregator=aggregators[0],
        validators=role_validators,
        gateway=accounts[GATEWAY_ACCOUNT_INDEX],
    )


def _checkpointer(local: LocalChain, rpc_url: str) -> Callable[[], bool]:
    """``LocalChain.checkpoint`` for the chain the run started on, which refuses to pretend:
    if that chain stopped, nothing was made durable, and the run must stop and say so."""

    def checkpoint() -> bool:
        info = local.info()
        if info is None or info.url != rpc_url:
            raise ServiceError(
                f"the local chain at {rpc_url} stopped during the run, so its state could not "
                "be saved; start it again with `chainml chain up` and rerun the same command "
                "to resume from the last saved state"
            )
        return local.checkpoint()

    return checkpoint


def _deployment(
    w3: Web3,
    data_dir: Path,
    store: Store,
    task: str,
    seed: int,
    validators: int,
    recipe: Recipe | None,
) -> Deployments:
    path = deployments_path(data_dir)
    existing = load_deployments(path)
    if existing is not None and existing.chain_id == w3.eth.chain_id:
        ledger_code = w3.eth.get_code(Web3.to_checksum_address(existing.address("ChainMLLedger")))
        if ledger_code:
            return existing
    weights, _ = genesis_weights(task, seed, recipe)
    genesis = store.put(weights)
    accounts = list(w3.eth.accounts)
    params = DeployParams(
        genesis_weights=cid_to_onchain(genesis),
        aggregators=(accounts[1],),
        validators=tuple(accounts[2 : 2 + validators]),
    )
    deployments = deploy(w3, accounts[0], params)
    save_deployments(path, deployments)
    return deployments


def _check_current_weights(ledger: Ledger, store: Store, task: str, recipe: Recipe | None) -> None:
    version = ledger.current_version()
    cid = onchain_to_str(*ledger.version(version).weights)
    expected = get_family(task).default_arch
    try:
        data = store.get(cid)
        arch = weights_arch(data)
    except StoreUnavailableError:
        raise  # the store is down: a fresh ledger would not help
    except StorageError as exc:
        raise ConfigError(
            f"the ledger's current version {version} has weights {cid}, which the store cannot "
            f"provide ({exc}); deploy a fresh ledger for this run (a new --data-dir)"
        ) from exc
    if arch != expected:
        raise ConfigError(
            f"the ledger's current weights are a {arch} model, but --task {task} trains "
            f"{expected}; use a new --data-dir for a different task"
        )
    if recipe is not None and (recorded := version_recipe(data)) != recipe:
        changed = sorted(k for k, v in recipe.to_json().items() if recorded.to_json()[k] != v)
        raise ConfigError(
            f"the ledger's versions follow another learning recipe ({', '.join(changed)} "
            "differ); rerun with the recorded settings, or use a new --data-dir"
        )
