"""`chainml chain up|down|status` against real Anvil and Ganache processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from web3 import Web3

from chainml.cli.main import main
from chainml.services.chain import LocalChain
from chainml.services.process import free_port
from tests.foundation.probe import deploy_probe, read_probe


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def status_json(capsys: pytest.CaptureFixture[str], data_dir: Path) -> dict[str, object]:
    code, out, _ = cli(capsys, "--data-dir", str(data_dir), "chain", "status", "--json")
    assert code == 0
    return json.loads(out)


@pytest.mark.parametrize("engine", ["anvil", pytest.param("ganache", marks=pytest.mark.ganache)])
def test_down_then_up_keeps_deployed_contract(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str
) -> None:
    code, out, err = cli(capsys, "--data-dir", str(tmp_path), "chain", "up", "--engine", engine)
    assert code == 0, err
    assert f"chain up: {engine} at http://127.0.0.1:" in out
    try:
        status = status_json(capsys, tmp_path)
        w3 = Web3(Web3.HTTPProvider(str(status["url"])))
        address = deploy_probe(w3, initial=4242)
        block_before = w3.eth.block_number

        assert cli(capsys, "--data-dir", str(tmp_path), "chain", "down")[0] == 0
        assert status_json(capsys, tmp_path) == {"running": False}

        assert cli(capsys, "--data-dir", str(tmp_path), "chain", "up")[0] == 0
        status = status_json(capsys, tmp_path)
        assert status["engine"] == engine
        w3 = Web3(Web3.HTTPProvider(str(status["url"])))
        assert read_probe(w3, address) == 4242
        assert w3.eth.block_number >= block_before
    finally:
        LocalChain(tmp_path).down()


def test_status_lists_chain_id_block_and_deployments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "deployments.json").write_text(
        json.dumps({"format": 1, "chain_id": 31337, "contracts": {"Registry": "0x" + "ab" * 20}})
    )
    LocalChain(tmp_path).up()
    try:
        code, out, _ = cli(capsys, "--data-dir", str(tmp_path), "chain", "status")
        assert code == 0
        assert "31337" in out and "block number" in out
        assert "Registry" in out and "0x" + "ab" * 20 in out
    finally:
        LocalChain(tmp_path).down()


def test_taken_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = LocalChain(tmp_path / "a").up()
    try:
        code, _, err = cli(
            capsys, "--data-dir", str(tmp_path / "b"), "chain", "up", "--port", str(first.port)
        )
        assert code == 1
        assert f"port {first.port} on 127.0.0.1 is already in use" in err
        assert LocalChain(tmp_path / "b").info() is None
    finally:
        LocalChain(tmp_path / "a").down()


def test_missing_binary_names_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINML_NODE_MODULES", str(tmp_path / "empty-node-modules"))
    code, _, err = cli(capsys, "--data-dir", str(tmp_path), "chain", "up")
    assert code == 1
    assert "`anvil` is not installed" in err and "make setup" in err


def test_corrupt_state_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    chain = LocalChain(tmp_path)
    chain.up()
    chain.down()
    chain.anvil_state.write_text('{"block": {"number": ')
    code, _, err = cli(capsys, "--data-dir", str(tmp_path), "chain", "up")
    assert code == 1
    assert "chain state file" in err and "is corrupt" in err
    assert chain.info() is None


def test_corrupt_pid_file_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "service.json").write_text("not json")
    code, _, err = cli(capsys, "--data-dir", str(tmp_path), "chain", "down")
    assert code == 1
    assert "pid file" in err and "is corrupt" in err


def test_down_never_signals_a_process_it_did_not_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        # A stale pid file that points at a live process running something else (pid reuse).
        (tmp_path / "chain").mkdir()
        (tmp_path / "chain" / "service.json").write_text(
            json.dumps(
                {
                    "name": "chain",
                    "pid": stranger.pid,
                    "port": free_port(),
                    "argv": ["anvil", "--port", "1234"],
                    "started_at": 0,
                    "details": {},
                }
            )
        )
        code, out, _ = cli(capsys, "--data-dir", str(tmp_path), "chain", "down")
        assert code == 0 and "was not running" in out
        assert stranger.poll() is None
        assert not (tmp_path / "chain" / "service.json").exists()
    finally:
        stranger.kill()
        stranger.wait()


def test_up_is_idempotent_and_down_leaves_no_process(tmp_path: Path) -> None:
    chain = LocalChain(tmp_path)
    first = chain.up()
    try:
        assert chain.up() == first
        assert is_alive(first.pid)
    finally:
        chain.down()
    assert not is_alive(first.pid)
    assert chain.info() is None


def is_alive(pid: int) -> bool:
    """A pid that is gone, or only a zombie awaiting its reaper, no longer runs anything."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
