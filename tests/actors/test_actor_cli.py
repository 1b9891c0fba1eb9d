"""``chainml <role> run`` with bad input: one line on stderr, exit code 1, never a traceback.

Keys come only from a key file or the environment, so a missing, unreadable, world-readable or
malformed key is refused before anything connects.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak
from web3 import Web3

from chainml.actors.keys import KEY_ENV, KEY_FILE_ENV, write_key_file
from chainml.chain.deploy import DeployParams, deploy
from chainml.chain.deployments import Deployments, deployments_path, save_deployments
from chainml.cli.main import main
from chainml.services.chain import ChainInfo

STRANGER = Account.from_key(keccak(text="chainml-actor-cli-stranger"))


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> str:
    code = main(["--data-dir", str(data_dir), *args])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_no_key_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = run(capsys, tmp_path, "validator", "run", "--rpc-url", "http://127.0.0.1:9")
    assert "no key" in err and "--key-file" in err


def test_a_key_file_others_can_read_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = write_key_file(tmp_path / "agg.key", STRANGER)
    key.chmod(0o644)
    err = run(capsys, tmp_path, "aggregator", "run", "--key-file", str(key))
    assert "readable by others" in err and "chmod 600" in err
    key.chmod(0o600)  # the same file, private: now it gets past the key check
    err = run(capsys, tmp_path, "aggregator", "run", "--key-file", str(key))
    assert "readable by others" not in err


@pytest.mark.parametrize("text", ["hello", "0x1234", "zz" * 32])
def test_a_malformed_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    key = tmp_path / "bad.key"
    key.write_text(text)
    key.chmod(0o600)
    err = run(capsys, tmp_path, "challenger", "run", "--key-file", str(key))
    assert "does not hold a private key" in err


def test_a_key_from_the_environment_then_no_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "0x" + bytes(STRANGER.key).hex())
    err = run(capsys, tmp_path, "gateway", "run", "--rpc-url", "http://127.0.0.1:9")
    assert "no deployments file" in err


def test_a_chain_that_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, bytes(STRANGER.key).hex())
    save_deployments(
        deployments_path(tmp_path), Deployments(31337, {"ChainMLLedger": "0x" + "1" * 40})
    )
    with_port = "http://127.0.0.1:9"  # the discard port: nothing listens there
    err = run(capsys, tmp_path, "validator", "run", "--rpc-url", with_port)
    assert with_port in err


def test_bad_options_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key = write_key_file(tmp_path / "k.key", STRANGER)
    err = run(capsys, tmp_path, "gateway", "run", "--key-file", str(key), "--mode", "direct")
    assert "unknown gateway mode 'direct'" in err


def test_a_key_without_the_role_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], chain: ChainInfo, w3: Web3
) -> None:
    deployments = deploy(w3, w3.eth.accounts[0], DeployParams(validators=(w3.eth.accounts[2],)))
    save_deployments(deployments_path(tmp_path), deployments)
    key = write_key_file(tmp_path / "v.key", STRANGER)
    args = ("--rpc-url", chain.url, "--key-file", str(key))
    err = run(capsys, tmp_path, "validator", "run", *args)
    assert f"{STRANGER.address} has no validator role" in err
    err = run(capsys, tmp_path, "aggregator", "run", *args)
    assert "has no aggregator role" in err
    assert os.stat(key).st_mode & 0o777 == 0o600
