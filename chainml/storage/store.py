"""The storage interface every backend implements, and how a backend is chosen.

The spec comes from ``--ipfs`` / ``$CHAINML_IPFS`` / config: ``embedded`` (the default, an
on-disk store in the data directory, no daemon) or the address of a Kubo-compatible RPC API,
as a URL (``http://127.0.0.1:5001``) or a multiaddr (``/ip4/127.0.0.1/tcp/5001``).
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from multiformats import CID

from chainml.errors import ConfigError, IntegrityError, StorageError
from chainml.storage.cid import CIDLike

IPFS_ENV = "CHAINML_IPFS"
EMBEDDED = "embedded"
EMBEDDED_SUBDIR = "ipfs-embedded"
"""Where the embedded store lives inside the data directory."""


class StoreUnavailableError(StorageError):
    """The store's service cannot be reached (an IPFS node that is down or went away).

    Unlike a bad or missing object, this says nothing about the content: callers must not
    count it as a device's or a proposal's fault, but stop and let the run resume once the
    node is back.
    """


@runtime_checkable
class Store(Protocol):
    """Content-addressed storage: put bytes, get verified bytes back by CID.

    CIDs are exactly those of ``ipfs add --cid-version=1 --raw-leaves`` (256 KiB chunks,
    balanced layout). Every ``get`` verifies the content against the CID. Errors are
    ``StorageError`` subclasses that name the CID concerned.
    """

    max_object_size: int

    def put(self, data: bytes, *, pin: bool = True) -> CID:
        """Store ``data`` and return its CID; pinned (recursively) unless ``pin=False``."""
        ...

    def get(self, cid: CIDLike) -> bytes:
        """The content of ``cid``, verified; ``IntegrityError`` if it does not match."""
        ...

    def has(self, cid: CIDLike) -> bool:
        """Whether the root block of ``cid`` is available locally."""
        ...

    def pin(self, cid: CIDLike) -> None:
        """Pin ``cid`` recursively (its whole DAG must be available)."""
        ...

    def unpin(self, cid: CIDLike) -> None:
        """Remove a recursive pin; unpinning something not pinned is not an error."""
        ...

    def pinned(self) -> list[CID]:
        """The recursively pinned roots, sorted by their base32 string."""
        ...

    def export_car(self, cid: CIDLike, path: str | os.PathLike[str]) -> None:
        """Write the DAG of ``cid`` as a CAR v1 file with ``cid`` as its only root."""
        ...

    def import_car(self, path: str | os.PathLike[str]) -> list[CID]:
        """Import a CAR v1 file, verify every block, pin and return its roots."""
        ...

    def close(self) -> None:
        """Release connections or handles (the store must not be used afterwards)."""
        ...


_MULTIADDR = re.compile(r"^/(ip4|ip6|dns4|dns6|dns)/([^/]+)/tcp/(\d+)(?:/(http|https))?/?$")
_URL = re.compile(r"^(http|https)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.\-]+):(\d+)/?$")


def stored_problem(store: Store, what: str, cid: str, expected: bytes) -> str | None:
    """Why ``store`` does not serve exactly ``expected`` under ``cid`` (None if it does), for a
    validator judging content a proposal names. An outage is raised, not returned: it is not
    evidence against the proposal."""
    try:
        if store.get(cid) != expected:
            return f"{what} {cid} is stored with other bytes"
    except IntegrityError as exc:
        return f"{what} {cid} is corrupt: {exc}"
    except StoreUnavailableError:
        raise
    except StorageError as exc:  # never stored: nobody can read what the version claims
        return f"{what} {cid} is not available: {exc}"
    return None


def parse_api_address(spec: str) -> str:
    """Normalise an RPC address (URL or multiaddr) to ``http://host:port``."""
    text = spec.strip()
    url = _URL.match(text)
    if url:
        scheme, host, port = url.groups()
    else:
        addr = _MULTIADDR.match(text)
        if not addr:
            raise ConfigError(
                f"IPFS backend {spec!r} is neither 'embedded' nor an RPC address such as "
                "http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001"
            )
        proto, host, port, scheme = addr.groups()
        scheme = scheme or "http"
        if proto in ("ip6",):
            host = f"[{host}]"
    if not 0 < int(port) < 65536:
        raise ConfigError(f"IPFS RPC port {port} in {spec!r} is out of range")
    return f"{scheme}://{host}:{int(port)}"


def open_store(
    spec: str | None,
    data_dir: str | os.PathLike[str],
    *,
    max_object_size: int | None = None,
    timeout: float | None = None,
) -> Store:
    """Open the backend named by ``spec`` (``None`` means ``$CHAINML_IPFS`` or embedded)."""
    chosen = (spec or os.environ.get(IPFS_ENV) or EMBEDDED).strip()
    if chosen.lower() == EMBEDDED:
        from chainml.storage.embedded import EmbeddedStore

        return EmbeddedStore(Path(data_dir) / EMBEDDED_SUBDIR, max_object_size=max_object_size)
    api_url = parse_api_address(chosen)
    from chainml.storage.kubo import DEFAULT_TIMEOUT, KuboStore

    return KuboStore(
        api_url,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        max_object_size=max_object_size,
    )


@cache
def shared_store(spec: str, data_dir: str) -> Store:
    """One handle per (backend, data dir) for this process: worker processes serve many jobs
    (devices, validators) and should not reopen the store for each one."""
    return open_store(spec, Path(data_dir))
