"""Open a report in real headless Chromium through chromedriver and check what rendered.

A ~100-line W3C WebDriver client over ``urllib`` instead of selenium: four endpoints are all
the check needs, and it adds no dependency. chromedriver listens on loopback only (127.0.0.1 and
::1) on a free port: it is started without ``--allowed-ips``, which would make it listen on every
interface and merely filter clients by address. Chromium runs headless with a fresh profile and
every background-network feature off. Both are stopped by PID when the ``Browser`` context exits.

Run ``python -m chainml.report.browser REPORT.html SCREENSHOT.png`` for a docs screenshot.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chainml.errors import ServiceError, ToolchainError
from chainml.services.process import HOST, free_port

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars",
)  # fmt: skip
WIDTH = 1200
MAX_HEIGHT = 16_000
START_TIMEOUT_S = 30.0
IMAGES_JS = """return Array.from(document.images).map(i => ({id: i.id, alt: i.alt,
  complete: i.complete, naturalWidth: i.naturalWidth, naturalHeight: i.naturalHeight}));"""


def find_chromium() -> tuple[str, str]:
    """Paths of the chromium and chromedriver executables, or a ToolchainError saying how."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    missing = [n for n, p in (("chromium", browser), ("chromedriver", driver)) if p is None]
    if missing:
        raise ToolchainError(
            f"{' and '.join(missing)} not found on PATH: run `make setup` (it installs the "
            "Debian packages chromium and chromium-driver)"
        )
    return str(browser), str(driver)


@dataclass(frozen=True)
class ImageState:
    id: str
    alt: str
    complete: bool
    natural_width: int
    natural_height: int


class Browser:
    """One headless Chromium session driven through chromedriver."""

    def __init__(self) -> None:
        self.chromium, self.chromedriver = find_chromium()
        self._profile = Path(tempfile.mkdtemp(prefix="chainml-chromium-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._session = ""
        self._base = ""

    def __enter__(self) -> Browser:
        port = free_port()
        self._base = f"http://{HOST}:{port}"
        self._proc = subprocess.Popen(
            # No --allowed-ips: with it chromedriver binds *:port (and only filters clients).
            [self.chromedriver, f"--port={port}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_ready()
            args = [
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile}",
                f"--window-size={WIDTH},900",
            ]
            caps = {"browserName": "chrome", "pageLoadStrategy": "normal",
                    "goog:chromeOptions": {"binary": self.chromium, "args": args}}  # fmt: skip
            value = self._request("POST", "/session", {"capabilities": {"alwaysMatch": caps}})
            self._session = value["sessionId"]
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._session:
                self._request("DELETE", f"/session/{self._session}")
        except ServiceError:
            pass
        finally:
            self._session = ""
            if self._proc is not None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                self._proc = None
            shutil.rmtree(self._profile, ignore_errors=True)

    @property
    def url(self) -> str:
        """chromedriver's base URL (``http://127.0.0.1:<port>``) while the session is open."""
        return self._base

    @property
    def pid(self) -> int | None:
        """chromedriver's PID while the session is open (Chromium runs as its child)."""
        return self._proc.pid if self._proc is not None else None

    # -- commands -------------------------------------------------------------------------

    def open(self, url: str) -> None:
        """Navigate; returns once the page's load event fired (images included)."""
        self._cmd("POST", "/url", {"url": url})

    def run(self, script: str) -> Any:
        return self._cmd("POST", "/execute/sync", {"script": script, "args": []})

    def screenshot(self, path: Path, full_page: bool = True) -> Path:
        if full_page:
            height = int(self.run("return document.documentElement.scrollHeight;"))
            self._cmd("POST", "/window/rect", {"width": WIDTH, "height": min(height, MAX_HEIGHT)})
        png = base64.b64decode(self._cmd("GET", "/screenshot"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
        return path

    def images(self) -> list[ImageState]:
        return [
            ImageState(
                i["id"],
                i["alt"],
                bool(i["complete"]),
                int(i["naturalWidth"]),
                int(i["naturalHeight"]),
            )
            for i in self.run(IMAGES_JS)
        ]

    # -- transport ------------------------------------------------------------------------

    def _cmd(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        return self._request(method, f"/session/{self._session}{path}", body)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self._base + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=120) as resp:
                return json.loads(resp.read() or b"{}").get("value")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise ServiceError(f"chromedriver {method} {path} failed: {detail}") from exc
        except OSError as exc:
            raise ServiceError(f"chromedriver {method} {path} failed: {exc}") from exc

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise ServiceError(f"chromedriver exited with code {self._proc.returncode}")
            try:
                if self._request("GET", "/status").get("ready"):
                    return
            except ServiceError:
                pass
            time.sleep(0.05)  # polling a starting process: no event to wait on
        raise ServiceError(f"chromedriver did not answer on {self._base} within {START_TIMEOUT_S}s")


@dataclass(frozen=True)
class PageCheck:
    title: str
    images: list[ImageState]
    screenshot: Path


def check_page(html: Path, screenshot: Path) -> PageCheck:
    """Load ``html`` from disk in headless Chromium; report its images and save a screenshot."""
    with Browser() as browser:
        browser.open(html.resolve().as_uri())
        title = str(browser.run("return document.title;"))
        images = browser.images()
        shot = browser.screenshot(screenshot)
    return PageCheck(title, images, shot)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m chainml.report.browser REPORT.html SCREENSHOT.png")
        return 2
    result = check_page(Path(args[0]), Path(args[1]))
    broken = [i.id for i in result.images if i.natural_width == 0]
    print(f"{result.title}: {len(result.images)} images, {len(broken)} broken {broken or ''}")
    print(f"screenshot: {result.screenshot}")
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
