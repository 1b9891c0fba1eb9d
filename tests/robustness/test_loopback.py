"""Nothing listens beyond loopback: every listening socket of each server a test or command
starts (Anvil, the js-ipfs node, chromedriver with its Chromium) is on 127.0.0.1 or ::1, checked
with ``ss`` while the server runs. The Ray head is checked in ``test_ray.py``.
"""

from __future__ import annotations

import subprocess

from chainml.report.browser import Browser, find_chromium
from chainml.services.chain import LocalChain
from chainml.services.ipfs import LocalIpfsNode
from chainml.services.process import free_port
from tests.robustness import procs


def _check(pid: int, port: int) -> list[procs.Listener]:
    listening = procs.listeners(procs.tree_pids(pid))
    assert port in {item.port for item in listening}, listening  # the check sees the server
    return [item for item in listening if not item.loopback]


def test_anvil_listens_on_loopback_only(tmp_path):
    chain = LocalChain(tmp_path / "data")
    info = chain.up()
    try:
        assert _check(info.pid, info.port) == []
    finally:
        chain.down()


def test_the_ipfs_node_listens_on_loopback_only(tmp_path):
    node = LocalIpfsNode(tmp_path / "data")
    info = node.up()
    try:
        assert _check(info.pid, info.port) == []
    finally:
        node.down()


def test_chromedriver_and_chromium_listen_on_loopback_only(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<html><title>t</title><body>loopback</body></html>")
    with Browser() as browser:
        browser.open(page.as_uri())
        assert browser.pid is not None
        port = int(browser.url.rsplit(":", 1)[1])
        assert _check(browser.pid, port) == []


def test_chromedriver_with_allowed_ips_listens_on_every_interface():
    """The run that must hurt: the flag the browser module used to pass."""
    _, driver = find_chromium()
    port = free_port()
    proc = subprocess.Popen(
        [driver, f"--port={port}", "--allowed-ips=127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        procs.wait_for(
            lambda: port in {i.port for i in procs.listeners([proc.pid])}, 30, "chromedriver"
        )
        exposed = _check(proc.pid, port)
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert exposed and all(item.port == port for item in exposed), exposed
