"""`chainml ipfs up|down|status` against a real offline js-ipfs node."""

from __future__ import annotations

import io
import json
from pathlib import Path

import ipfshttpclient
import pytest

from chainml.cli.main import main
from chainml.services.ipfs import IpfsInfo, LocalIpfsNode
from chainml.services.process import free_port


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def client(port: int) -> ipfshttpclient.Client:
    # Client(addr), not connect(): connect() rejects every daemon version >= 0.8.0.
    return ipfshttpclient.Client(f"/ip4/127.0.0.1/tcp/{port}/http", timeout=20)


def test_down_then_up_keeps_pinned_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    payload = b"meta-weights v0 " * 1000
    code, out, err = cli(capsys, "--data-dir", str(tmp_path), "ipfs", "up")
    assert code == 0, err
    try:
        code, out, _ = cli(capsys, "--data-dir", str(tmp_path), "ipfs", "status", "--json")
        status = json.loads(out)
        assert status["running"] and status["api_url"].startswith("http://127.0.0.1:")
        with client(int(status["api_url"].rsplit(":", 1)[1])) as ipfs:
            cid = ipfs.add(io.BytesIO(payload), cid_version=1, raw_leaves=True, pin=True)["Hash"]

        assert cli(capsys, "--data-dir", str(tmp_path), "ipfs", "down")[0] == 0
        code, out, _ = cli(capsys, "--data-dir", str(tmp_path), "ipfs", "status", "--json")
        assert json.loads(out) == {"running": False}

        assert cli(capsys, "--data-dir", str(tmp_path), "ipfs", "up")[0] == 0
        info = LocalIpfsNode(tmp_path).info()
        assert info is not None
        with client(info.port) as ipfs:
            assert cid in ipfs.pin.ls(type="recursive")["Keys"]
            assert ipfs.cat(cid) == payload
    finally:
        LocalIpfsNode(tmp_path).down()


def test_node_is_offline_and_loopback_only(ipfs_node: IpfsInfo) -> None:
    with client(ipfs_node.port) as ipfs:
        config = ipfs.config.get()
        assert config["Bootstrap"] == []
        assert config["Addresses"]["Swarm"] == []
        assert config["Addresses"]["Delegates"] == []
        assert config["Discovery"]["MDNS"]["Enabled"] is False
        assert config["Routing"]["Type"] == "none"
        assert ipfs.id()["Addresses"] == []
        assert ipfs.swarm.peers() in ([], {"Peers": None}, {"Peers": []}, None)


def test_taken_port_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = LocalIpfsNode(tmp_path / "a").up()
    try:
        code, _, err = cli(
            capsys, "--data-dir", str(tmp_path / "b"), "ipfs", "up", "--port", str(first.port)
        )
        assert code == 1
        assert f"port {first.port} on 127.0.0.1 is already in use" in err
    finally:
        LocalIpfsNode(tmp_path / "a").down()


def test_missing_package_names_the_install_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAINML_NODE_MODULES", str(tmp_path / "empty-node-modules"))
    code, _, err = cli(
        capsys, "--data-dir", str(tmp_path), "ipfs", "up", "--port", str(free_port())
    )
    assert code == 1
    assert "ipfs-core is not installed" in err and "make setup" in err


def test_corrupt_repo_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = LocalIpfsNode(tmp_path).repo_dir
    repo.mkdir(parents=True)
    (repo / "config").write_text("{ truncated")
    code, _, err = cli(capsys, "--data-dir", str(tmp_path), "ipfs", "up")
    assert code == 1
    assert "IPFS repo" in err and "is corrupt" in err
