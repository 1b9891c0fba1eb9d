"""``chainml ipfs add|cat|export|import`` as plain typer commands."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from chainml.cli.ipfs_content import add, cat, export, import_car
from chainml.errors import ConfigError, StorageError
from chainml.services.ipfs import IpfsInfo
from chainml.storage.cid import cid_str
from chainml.storage.limits import ObjectTooLargeError
from chainml.storage.unixfs import CHUNK_SIZE, file_cid
from tests.storage.samples import KUBO_REFERENCE, payload

app = typer.Typer()
app.command("add")(add)
app.command("cat")(cat)
app.command("export")(export)
app.command("import")(import_car)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch):
    """Invoke the commands with a private data directory and the default backend."""
    monkeypatch.setenv("CHAINML_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("CHAINML_IPFS", raising=False)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, [str(a) for a in args])


def test_add_prints_only_the_kubo_cid(cli, tmp_path: Path):
    path = tmp_path / "hello.txt"
    path.write_bytes(b"hello world\n")
    result = cli("add", path)
    assert result.exit_code == 0, result.output
    assert result.stdout == KUBO_REFERENCE[b"hello world\n"] + "\n"


def test_cat_writes_the_exact_bytes(cli, tmp_path: Path):
    data = payload(2 * CHUNK_SIZE + 3, seed=31) + b"\r\n\x00\xff"
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    cid = cli("add", path).stdout.strip()
    result = cli("cat", cid)
    assert result.exit_code == 0
    assert result.stdout_bytes == data


def test_export_then_import_into_another_data_dir(cli, tmp_path: Path, monkeypatch):
    data = payload(3 * CHUNK_SIZE, seed=32)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    cid = cli("add", path).stdout.strip()
    car = tmp_path / "blob.car"
    assert cli("export", cid, car).exit_code == 0
    other = tmp_path / "other"
    result = cli("import", car, "--data-dir", other)
    assert result.exit_code == 0
    assert result.stdout == cid + "\n"
    assert cli("cat", cid, "--data-dir", other).stdout_bytes == data


def test_ipfs_option_selects_the_rpc_backend(cli, tmp_path: Path, ipfs_node: IpfsInfo):
    data = payload(CHUNK_SIZE + 1, seed=33)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    result = cli("add", path, "--ipfs", ipfs_node.api_url)
    assert result.stdout.strip() == cid_str(file_cid(data))
    assert cli("cat", result.stdout.strip(), "--ipfs", ipfs_node.api_url).stdout_bytes == data
    # the embedded store of this data directory was not involved
    assert isinstance(cli("cat", result.stdout.strip()).exception, StorageError)


def test_ipfs_environment_variable_selects_the_backend(cli, monkeypatch, ipfs_node: IpfsInfo):
    cid = KUBO_REFERENCE[b""]
    monkeypatch.setenv("CHAINML_IPFS", "/ip4/127.0.0.1/tcp/1")
    result = cli("cat", cid)
    assert isinstance(result.exception, StorageError)
    assert "cannot reach the IPFS node at http://127.0.0.1:1" in str(result.exception)


def test_errors_are_chainml_errors(cli, tmp_path: Path, monkeypatch):
    assert isinstance(cli("add", tmp_path / "nope").exception, StorageError)
    assert isinstance(cli("add", tmp_path, "--ipfs", "bogus").exception, ConfigError)
    assert isinstance(cli("cat", "not-a-cid").exception, StorageError)
    monkeypatch.setenv("CHAINML_MAX_OBJECT_SIZE", "4")
    big = tmp_path / "big"
    big.write_bytes(b"12345")
    assert isinstance(cli("add", big).exception, ObjectTooLargeError)
