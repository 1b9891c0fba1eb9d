"""``chainml export VERSION --target cortex-m4 --out DIR``: a ledger version as MCU artifacts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from web3 import Web3

from chainml.cli.context import cli_context, console
from chainml.errors import ConfigError


def export(
    ctx: typer.Context,
    version: Annotated[int, typer.Argument(help="The ledger version to export.")],
    target: Annotated[str, typer.Option(help="Device target.")] = "cortex-m4",
    out: Annotated[Path, typer.Option(help="Directory for the artifacts.")] = Path("export"),
    rpc_url: Annotated[
        str | None, typer.Option(envvar="CHAINML_RPC_URL", help="Chain (default: local chain).")
    ] = None,
    deployments: Annotated[
        Path | None, typer.Option(help="Deployments file (default: <data dir>/deployments.json).")
    ] = None,
    ipfs: Annotated[
        str, typer.Option(envvar="CHAINML_IPFS", help="`embedded` or a Kubo RPC API URL.")
    ] = "embedded",
    sender: Annotated[
        str | None,
        typer.Option(help="Account that records the artifact (default: first unlocked account)."),
    ] = None,
    compress: Annotated[
        str | None,
        typer.Option(
            help="Shrink before quantizing: unstructured:S, structured:F, distill:F or int4, "
            "optionally +int4 (trained from the version with the device protocol's loss; the "
            "manifest compares it with the uncompressed int8 export)."
        ),
    ] = None,
    compress_steps: Annotated[int, typer.Option(help="Training steps of --compress.")] = 1500,
    vectors: Annotated[
        int, typer.Option(help="Realistic test vectors checked bit for bit (plus 24 random).")
    ] = 1000,
    record: Annotated[
        bool, typer.Option(help="Record the artifact CID on chain beside the version.")
    ] = True,
) -> None:
    """Quantize a finalized version to int8 and emit a .tflite, C code and Cortex-M4 ELFs.

    The int8 reference is checked bit for bit against TFLite Micro and against the ELF under
    QEMU; the bundle is stored (one CID) and recorded on chain beside the version.
    """
    from chainml.chain.client import Ledger
    from chainml.chain.deployments import deployments_path, load_deployments
    from chainml.cli.deploy_cmd import local_rpc_url
    from chainml.mcu.compress import parse
    from chainml.mcu.export import check_target, check_toolchain, export_version
    from chainml.storage.store import open_store

    check_target(target)
    check_toolchain()
    shrink = parse(compress, steps=compress_steps) if compress else None
    if vectors < 1:
        raise ConfigError(f"--vectors must be at least 1, got {vectors}")
    data_dir = cli_context(ctx).data_dir
    path = deployments or deployments_path(data_dir)
    deployed = load_deployments(path)
    if deployed is None:
        raise ConfigError(f"no deployments file at {path}; deploy first or pass --deployments")
    w3 = Web3(Web3.HTTPProvider(rpc_url or local_rpc_url(data_dir), request_kwargs={"timeout": 60}))
    ledger = Ledger.from_deployments(w3, deployed)
    store = open_store(ipfs, data_dir)
    try:
        with console.status(f"exporting version {version} for {target} ..."):
            result = export_version(
                ledger if record else _NoRecord(ledger), store, version, target, out,
                sender=sender, n_test=vectors, compress=shrink,
            )  # fmt: skip
    finally:
        store.close()
    m = result.manifest
    table = Table(title=f"version {version} -> {target}")
    table.add_column("item")
    table.add_column("value")
    fp = m["footprint"]
    checks = m["checks"]
    dp = m["device_protocol"]
    rows = [
        ("weights", result.weights_cid),
        ("model", f"{m['model']} ({m['arch_id']}, {m['family']})"),
        ("flash / RAM", f"{fp['flash_bytes']:,} B / {fp['ram_bytes']:,} B"),
        ("instructions / inference", f"{checks['instructions_per_inference']:,.0f} (QEMU)"),
        ("bit-exact TFLM", f"{checks['bit_exact_tflm']} ({checks['vectors']} vectors)"),
        ("bit-exact QEMU", f"{checks['bit_exact_qemu']} ({checks['vectors']} vectors)"),
        (
            "head re-fit (C, QEMU)",
            f"rel. error {checks['adapt_max_rel_error']:.1e}, "
            f"{checks['adapt_flash_bytes']:,} B flash / {checks['adapt_ram_bytes']:,} B RAM",
        ),
        (
            "device protocol",
            f"{dp['metric']} {dp['score']:.4f} ({dp['shots']} shots, ridge {dp['ridge_lambda']:g}, "
            f"{dp['eval_tasks']} held-out tasks)",
        ),
    ]
    if "compression" in m:
        c = m["compression"]
        rows.append(
            (
                f"{c['spec']} vs int8",
                f"{c['flash_ratio']:.1%} of {c['baseline_flash_bytes']:,} B flash, "
                f"{dp['metric']} {c['baseline_metric']:.4f} -> {dp['score']:.4f} "
                f"(loss {c['loss_vs_int8']:+.1%})",
            )
        )
    rows += [
        ("artifact", result.artifact_cid),
        ("recorded on chain", str(result.recorded)),
        ("files", str(out)),
    ]
    for item, value in rows:
        table.add_row(item, value)
    console.print(table)


class _NoRecord:
    """The ledger without its write method: ``--no-record`` exports without a transaction."""

    def __init__(self, ledger: object) -> None:
        self._ledger = ledger

    def current_version(self) -> int:
        return self._ledger.current_version()  # type: ignore[attr-defined]

    def version(self, version: int) -> dict:
        return self._ledger.version(version)  # type: ignore[attr-defined]
