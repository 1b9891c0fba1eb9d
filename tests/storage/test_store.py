"""Choosing a backend: ``open_store`` and the RPC address forms it accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainml.errors import ConfigError
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.kubo import KuboStore
from chainml.storage.store import Store, open_store, parse_api_address


def test_embedded_is_the_default(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("CHAINML_IPFS", raising=False)
    store = open_store(None, tmp_path)
    assert isinstance(store, EmbeddedStore)
    assert isinstance(store, Store)
    assert store.root == tmp_path / "ipfs-embedded"


def test_environment_chooses_the_backend(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CHAINML_IPFS", "http://127.0.0.1:5999")
    store = open_store(None, tmp_path)
    assert isinstance(store, KuboStore) and store.api_url == "http://127.0.0.1:5999"
    assert isinstance(open_store("embedded", tmp_path), EmbeddedStore)  # explicit wins


@pytest.mark.parametrize(
    ("spec", "url"),
    [
        ("http://127.0.0.1:5001", "http://127.0.0.1:5001"),
        ("http://localhost:5001/", "http://localhost:5001"),
        ("/ip4/127.0.0.1/tcp/5001", "http://127.0.0.1:5001"),
        ("/ip4/127.0.0.1/tcp/5001/http", "http://127.0.0.1:5001"),
        ("/dns/ipfs.local/tcp/443/https", "https://ipfs.local:443"),
        ("/ip6/::1/tcp/5001", "http://[::1]:5001"),
    ],
)
def test_rpc_addresses(spec: str, url: str, tmp_path: Path):
    assert parse_api_address(spec) == url
    store = open_store(spec, tmp_path, timeout=3)
    assert isinstance(store, KuboStore) and store.api_url == url and store.timeout == 3
    store.close()


@pytest.mark.parametrize(
    "spec",
    ["kubo", "ftp://127.0.0.1:21", "http://127.0.0.1", "/ip4/127.0.0.1/udp/5001", "http://h:0"],
)
def test_anything_else_is_a_config_error(spec: str, tmp_path: Path):
    with pytest.raises(ConfigError):
        open_store(spec, tmp_path)


def test_bad_size_limits_are_config_errors(tmp_path: Path, monkeypatch):
    with pytest.raises(ConfigError):
        EmbeddedStore(tmp_path, max_object_size=0)
    monkeypatch.setenv("CHAINML_MAX_OBJECT_SIZE", "lots")
    with pytest.raises(ConfigError, match="CHAINML_MAX_OBJECT_SIZE"):
        EmbeddedStore(tmp_path)
