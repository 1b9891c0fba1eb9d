"""Every way a user can point inspect at the wrong thing ends in one clear ChainMLError."""

from __future__ import annotations

import json
import socket

from chainml.errors import ChainError, ConfigError


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_rpc_is_a_chain_error(invoke, swarm_chain):
    url = f"http://127.0.0.1:{_closed_port()}"
    result = invoke("nodes", "--rpc-url", url, "--deployments", str(swarm_chain.deployments_file),
                    target=False)  # fmt: skip
    assert result.exit_code == 1 and isinstance(result.exception, ChainError)
    assert url in str(result.exception) and "chainml chain up" in str(result.exception)


def test_missing_deployments_file_is_a_config_error(invoke, swarm_chain, tmp_path):
    missing = tmp_path / "nope.json"
    result = invoke("contracts", "--rpc-url", swarm_chain.url, "--deployments", str(missing),
                    target=False)  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert str(missing) in str(result.exception) and "make deploy" in str(result.exception)


def test_deployments_of_another_chain_are_refused(invoke, swarm_chain, tmp_path):
    raw = json.loads(swarm_chain.deployments_file.read_text())
    other = tmp_path / "other-chain.json"
    other.write_text(json.dumps(raw | {"chain_id": 1}))
    result = invoke("rounds", "--rpc-url", swarm_chain.url, "--deployments", str(other),
                    target=False)  # fmt: skip
    assert isinstance(result.exception, ConfigError) and "chain id 1" in str(result.exception)

    empty = "0x" + "ab" * 20
    raw["contracts"]["ChainMLLedger"] = empty
    other.write_text(json.dumps(raw))
    result = invoke("rounds", "--rpc-url", swarm_chain.url, "--deployments", str(other),
                    target=False)  # fmt: skip
    assert isinstance(result.exception, ConfigError)
    assert "no contract code" in str(result.exception) and empty in str(result.exception)


def test_unknown_and_malformed_addresses(invoke, swarm_chain):
    stranger = "0x" + "12" * 20
    result = invoke("node", stranger)
    assert isinstance(result.exception, ConfigError)
    assert "unknown address" in str(result.exception)
    result = invoke("node", "0x1234")
    assert isinstance(result.exception, ConfigError) and "not an Ethereum address" in str(
        result.exception
    )
    result = invoke("events", "--node", "bob")
    assert isinstance(result.exception, ConfigError)


def test_default_target_is_the_data_dirs_local_chain(invoke, swarm_chain, monkeypatch, tmp_path):
    monkeypatch.delenv("CHAINML_RPC_URL", raising=False)
    result = invoke("nodes", target=False)
    assert isinstance(result.exception, ChainError)
    assert "no local chain is running" in str(result.exception) and str(tmp_path) in str(
        result.exception
    )
    # The environment variable names the chain; the deployments default to the data dir's.
    monkeypatch.setenv("CHAINML_RPC_URL", swarm_chain.url)
    (tmp_path / "deployments.json").write_text(swarm_chain.deployments_file.read_text())
    result = invoke("nodes", "--json", target=False)
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 6
