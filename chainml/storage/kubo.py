"""The Kubo RPC backend: any node speaking Kubo's HTTP RPC (Kubo itself, or js-ipfs here).

Everything the node returns is treated as untrusted: added content must come back with the
CID chainml computes itself, fetched content is verified against its CID, and exported CARs
are checked block by block. Every call carries a timeout, because a node that lacks a CID
(js-ipfs in particular) would otherwise wait forever for peers that never come.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import requests
import urllib3
from multiformats import CID

from chainml.errors import IntegrityError, StorageError
from chainml.storage.car import read_car
from chainml.storage.cid import (
    RAW,
    CIDLike,
    canonical_bytes,
    cid_from_bytes,
    cid_str,
    split_cid_bytes,
    to_cid_bytes,
    verify_block,
)
from chainml.storage.limits import check_object_size, parse_max_object_size
from chainml.storage.store import StoreUnavailableError, parse_api_address
from chainml.storage.unixfs import (
    CHUNK_SIZE,
    decode_file_node,
    file_cid,
    iter_dag_cids,
    iter_file,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import ipfshttpclient
    from ipfshttpclient import exceptions as ipfs_errors

# ipfshttpclient 0.7.0 passes urllib3 a long-gone argument on every connection; harmless.
warnings.filterwarnings("ignore", message="The 'strict' parameter", category=FutureWarning)

DEFAULT_TIMEOUT = 30.0
"""Seconds any single RPC may stay silent before it is abandoned."""
DEFAULT_HAS_TIMEOUT = 1.0
"""js-ipfs cannot answer "not here" offline: ``has`` treats this much silence as absent."""
ADD_OPTIONS = {"cid_version": 1, "raw_leaves": True, "chunker": f"size-{CHUNK_SIZE}"}
"""``ipfs add --cid-version=1 --raw-leaves --chunker=size-262144``: Kubo-identical CIDs."""

T = TypeVar("T")


class KuboStore:
    """``Store`` over Kubo's HTTP RPC API through ``ipfshttpclient.Client``.

    ``Client(addr)`` rather than ``ipfshttpclient.connect()``: ``connect`` rejects every
    daemon version from 0.8.0 on, i.e. every modern Kubo.
    """

    def __init__(
        self,
        api_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        max_object_size: int | None = None,
        has_timeout: float = DEFAULT_HAS_TIMEOUT,
    ) -> None:
        self.api_url = parse_api_address(api_url)
        self.timeout = float(timeout)
        self.has_timeout = float(has_timeout)
        self.max_object_size = parse_max_object_size(max_object_size)
        scheme, rest = self.api_url.split("://", 1)
        host, port = rest.rsplit(":", 1)
        proto = "ip6" if host.startswith("[") else "ip4" if host[0].isdigit() else "dns"
        addr = f"/{proto}/{host.strip('[]')}/tcp/{port}/{scheme}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._client = ipfshttpclient.Client(addr, timeout=self.timeout, session=True)

    def __repr__(self) -> str:
        return f"KuboStore({self.api_url!r})"

    def put(self, data: bytes, *, pin: bool = True) -> CID:
        check_object_size(len(data), self.max_object_size)
        expected = file_cid(data)
        reply = self._call(
            "add",
            None,
            lambda: self._client.add(
                io.BytesIO(data), pin=pin, timeout=self.timeout, **ADD_OPTIONS
            ),
        )
        got = canonical_bytes(_parse_reply_cid(reply["Hash"]))
        if got != expected:
            raise IntegrityError(
                f"IPFS node at {self.api_url} stored the content as {cid_str(got)}, but its "
                f"Kubo CID is {cid_str(expected)}: the node does not honour "
                "--cid-version=1 --raw-leaves --chunker=size-262144"
            )
        return cid_from_bytes(expected)

    def get(self, cid: CIDLike) -> bytes:
        root = to_cid_bytes(cid)
        name = cid_str(root)
        limit = self.max_object_size
        if split_cid_bytes(root)[0] == RAW:
            data = self._cat(root, limit + 1)
            check_object_size(len(data), limit, f"object {name}")
            verify_block(root, data)
            return data
        block = self._block(root)
        verify_block(root, block)
        size = decode_file_node(root, block).filesize
        check_object_size(size, limit, f"object {name}")
        data = self._cat(root, size + 1)
        if len(data) == size and file_cid(data) == root:
            return data
        # Not laid out the way chainml adds files (or tampered with): verify block by block.
        return b"".join(iter_file(root, self._block, limit))

    def has(self, cid: CIDLike) -> bool:
        root = to_cid_bytes(cid)
        try:
            self._client.block.stat(cid_str(root), timeout=self.has_timeout)
        except ipfs_errors.TimeoutError:
            return False
        except ipfs_errors.Error as exc:
            raise self._wrap("block/stat", root, exc) from exc
        return True

    def pin(self, cid: CIDLike) -> None:
        root = to_cid_bytes(cid)
        self._call(
            "pin/add",
            root,
            lambda: self._client.pin.add(cid_str(root), recursive=True, timeout=self.timeout),
        )

    def unpin(self, cid: CIDLike) -> None:
        root = to_cid_bytes(cid)
        try:
            self._client.pin.rm(cid_str(root), recursive=True, timeout=self.timeout)
        except ipfs_errors.ErrorResponse as exc:
            if "not pinned" in str(exc).lower():
                return
            raise self._wrap("pin/rm", root, exc) from exc
        except ipfs_errors.Error as exc:
            raise self._wrap("pin/rm", root, exc) from exc

    def pinned(self) -> list[CID]:
        reply = self._call(
            "pin/ls", None, lambda: self._client.pin.ls(type="recursive", timeout=self.timeout)
        )
        roots = []
        for key in reply["Keys"]:
            try:
                roots.append(canonical_bytes(_parse_reply_cid(key)))
            except StorageError:
                continue  # pins chainml cannot represent (other hash functions, codecs)
        return [cid_from_bytes(root) for root in sorted(set(roots), key=cid_str)]

    def export_car(self, cid: CIDLike, path: str | os.PathLike[str]) -> None:
        root = to_cid_bytes(cid)
        data = self._call(
            "dag/export", root, lambda: self._client.dag.export(cid_str(root), timeout=self.timeout)
        )
        check_object_size(len(data), self.max_object_size, f"CAR of {cid_str(root)}")
        roots, blocks = read_car(io.BytesIO(data), self.max_object_size)
        if [canonical_bytes(r) for r in roots] != [root]:
            raise IntegrityError(f"IPFS node exported a CAR for {cid_str(root)} with other roots")
        for block_cid, block in blocks:
            verify_block(block_cid, block)
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
        try:
            tmp.write_bytes(data)
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"cannot write CAR file {target}: {exc}") from exc
        finally:
            if tmp.exists():
                tmp.unlink()

    def import_car(self, path: str | os.PathLike[str]) -> list[CID]:
        try:
            with open(path, "rb") as source:
                roots, blocks = read_car(source, self.max_object_size)
                car: dict[bytes, bytes] = {}
                for block_cid, block in blocks:
                    verify_block(block_cid, block)
                    car.setdefault(split_cid_bytes(block_cid)[1], bytes(block))
            for root in roots:  # nothing goes to the node unless every root's DAG is whole
                self._check_complete(canonical_bytes(root), car, path)
            with open(path, "rb") as source:
                self._call(
                    "dag/import",
                    None,
                    lambda: list(self._client.dag.imprt(source, stream=True, timeout=self.timeout)),
                )
        except OSError as exc:
            raise StorageError(f"cannot read CAR file {path}: {exc}") from exc
        canonical = [canonical_bytes(root) for root in roots]
        for root in canonical:
            self.pin(root)
        return [cid_from_bytes(root) for root in canonical]

    def _check_complete(
        self, root: bytes, car: dict[bytes, bytes], path: str | os.PathLike[str]
    ) -> None:
        """Raise unless the DAG of ``root`` is in ``car`` or already on the node."""

        def block(cid: bytes) -> bytes:
            found = car.get(split_cid_bytes(cid)[1])
            return found if found is not None else self._block(cid)

        for cid in iter_dag_cids(root, block):
            if split_cid_bytes(cid)[1] not in car and not self.has(cid):
                raise IntegrityError(
                    f"CAR file {path} lacks block {cid_str(canonical_bytes(cid))} of its root "
                    f"{cid_str(root)} (and the IPFS node does not have it either); nothing "
                    "was imported"
                )

    def close(self) -> None:
        self._client.close()

    def _cat(self, root: bytes, length: int) -> bytes:
        return self._call(
            "cat",
            root,
            lambda: self._client.cat(cid_str(root), length=length, timeout=self.timeout),
        )

    def _block(self, cid: bytes) -> bytes:
        return self._call(
            "block/get",
            cid,
            lambda: self._client.block.get(cid_str(canonical_bytes(cid)), timeout=self.timeout),
        )

    def _call(self, what: str, cid: bytes | None, call: Callable[[], T]) -> T:
        try:
            return call()
        except ipfs_errors.Error as exc:
            raise self._wrap(what, cid, exc) from exc
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            # a node that dies mid-reply can surface below ipfshttpclient's own errors
            raise self._unreachable(what, cid) from exc

    def _unreachable(self, what: str, cid: bytes | None) -> StoreUnavailableError:
        subject = f" {cid_str(canonical_bytes(cid))}" if cid is not None else ""
        return StoreUnavailableError(
            f"cannot reach the IPFS node at {self.api_url} ({what}{subject}): is it "
            "running? Start one with `chainml ipfs up` (on the same port), then rerun "
            "to resume; or use --ipfs embedded"
        )

    def _wrap(self, what: str, cid: bytes | None, exc: Exception) -> StorageError:
        subject = f" {cid_str(canonical_bytes(cid))}" if cid is not None else ""
        if isinstance(exc, ipfs_errors.TimeoutError):
            if cid is not None:
                return StorageError(
                    f"CID{subject} was not found on the IPFS node at {self.api_url} within "
                    f"{self.timeout:g} s ({what} timed out): it is not stored there; "
                    "add or import it first"
                )
            return StoreUnavailableError(
                f"IPFS node at {self.api_url} did not answer {what} within {self.timeout:g} s"
            )
        if isinstance(exc, ipfs_errors.ConnectionError | ipfs_errors.ProtocolError):
            return self._unreachable(what, cid)
        return StorageError(f"IPFS node at {self.api_url} failed {what}{subject}: {exc}")


def _parse_reply_cid(text: str) -> bytes:
    """Binary CID from a node's reply (js-ipfs answers in base58btc, also CIDv0 for pins)."""
    try:
        return bytes(CID.decode(text))
    except Exception as exc:  # multiformats raises several unrelated types
        raise StorageError(f"IPFS node replied with an invalid CID {text!r}") from exc
