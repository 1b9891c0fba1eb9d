"""``chainml ipfs add|cat|export|import``: move content in and out of a storage backend.

Plain command functions; the ``ipfs`` sub-app registers them next to ``up/down/status``.
They use the embedded store in the data directory unless ``--ipfs`` (or ``$CHAINML_IPFS``)
names a Kubo RPC API. Output is machine-friendly: ``add`` and ``import`` print only CIDs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from chainml.errors import StorageError
from chainml.paths import DATA_DIR_ENV, data_dir
from chainml.storage.cid import cid_str
from chainml.storage.limits import check_object_size
from chainml.storage.store import IPFS_ENV, Store, open_store

IpfsOption = Annotated[
    str,
    typer.Option(
        "--ipfs",
        envvar=IPFS_ENV,
        help="Storage backend: 'embedded' (no daemon) or a Kubo RPC address such as "
        "http://127.0.0.1:5001 or /ip4/127.0.0.1/tcp/5001.",
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=DATA_DIR_ENV,
        help="Data directory holding the embedded store.",
        show_default="./.chainml",
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", help="Seconds before a call to a remote IPFS node gives up."),
]


@contextlib.contextmanager
def _store(ipfs: str, data_dir_option: Path | None, timeout: float) -> Iterator[Store]:
    store = open_store(ipfs, data_dir(data_dir_option), timeout=timeout)
    try:
        yield store
    finally:
        store.close()


def add(
    path: Annotated[Path, typer.Argument(help="File to store.", show_default=False)],
    ipfs: IpfsOption = "embedded",
    data_dir_option: DataDirOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Store a file and print only its CID (Kubo-identical: CIDv1, raw leaves, 256 KiB)."""
    with _store(ipfs, data_dir_option, timeout) as store:
        try:
            size = os.stat(path).st_size
            check_object_size(size, store.max_object_size, f"file {path}")
            data = path.read_bytes()
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc.strerror or exc}") from exc
        typer.echo(cid_str(store.put(data)))


def cat(
    cid: Annotated[str, typer.Argument(help="CID to fetch.", show_default=False)],
    ipfs: IpfsOption = "embedded",
    data_dir_option: DataDirOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Write the content of CID to stdout, after verifying it against the CID."""
    with _store(ipfs, data_dir_option, timeout) as store:
        data = store.get(cid)
    out = typer.get_binary_stream("stdout")
    out.write(data)
    out.flush()


def export(
    cid: Annotated[str, typer.Argument(help="Root CID to export.", show_default=False)],
    car: Annotated[Path, typer.Argument(help="CAR file to write.", show_default=False)],
    ipfs: IpfsOption = "embedded",
    data_dir_option: DataDirOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Write the DAG of CID as a CAR v1 file (`ipfs dag import` reads it)."""
    with _store(ipfs, data_dir_option, timeout) as store:
        store.export_car(cid, car)


def import_car(
    car: Annotated[Path, typer.Argument(help="CAR v1 file to import.", show_default=False)],
    ipfs: IpfsOption = "embedded",
    data_dir_option: DataDirOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Import a CAR v1 file, verifying every block; pins and prints its root CIDs."""
    with _store(ipfs, data_dir_option, timeout) as store:
        for root in store.import_car(car):
            typer.echo(cid_str(root))
