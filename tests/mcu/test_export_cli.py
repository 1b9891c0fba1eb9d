"""``chainml export``: a finalized version from a real Anvil ledger and store to artifacts
that run bit-exact, stored under one CID and recorded on chain; and its one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from chainml.cli.main import main
from chainml.mcu.tflite import tflm_run
from chainml.meta.recipe import Recipe
from chainml.storage.cid import onchain_to_str
from tests.swarm.conftest import SwarmEnv


@dataclass
class Exported:
    env: SwarmEnv
    out: Path
    code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def ledger_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwarmEnv]:
    """A real Anvil chain with one finalized version from a 4-node, 1-round sine swarm."""
    from chainml.services.chain import LocalChain
    from chainml.swarm.config import SwarmConfig

    data_dir = tmp_path_factory.mktemp("export-ledger")
    chain = LocalChain(data_dir)
    env = SwarmEnv(data_dir, chain.up().url)
    try:
        rows = env.run(SwarmConfig(nodes=4, rounds=1, mode="relayed", task="sine"))
        assert [r["status"] for r in rows] == ["finalized"]
        yield env
    finally:
        chain.down()


@pytest.fixture(scope="module")
def exported(ledger_env: SwarmEnv, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    out = tmp_path_factory.mktemp("export-out") / "v1"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(
            ["--data-dir", str(ledger_env.data_dir), "export", "1", "--target", "cortex-m4",
             "--out", str(out)]
        )  # fmt: skip
    return Exported(ledger_env, out, code, stdout.getvalue(), stderr.getvalue())


@pytest.mark.slow
def test_export_writes_bit_exact_artifacts(exported: Exported) -> None:
    assert exported.code == 0, exported.stderr
    for name in ("model.tflite", "chainml_model.c", "chainml_model.h", "firmware.elf",
                 "harness.elf", "adapt.elf", "manifest.json", "artifact.cid"):  # fmt: skip
        assert (exported.out / name).stat().st_size > 0, name
    manifest = json.loads((exported.out / "manifest.json").read_text())
    assert manifest["version"] == 1 and manifest["arch_id"] == "mlp-sine"
    assert manifest["weights_cid"] == exported.env.version_cids()[1]
    checks = manifest["checks"]
    assert checks["bit_exact_tflm"] and checks["bit_exact_qemu"] and checks["vectors"] >= 1000
    assert checks["adapt_matches"] and checks["adapt_max_rel_error"] < 1e-4
    assert checks["instructions_per_inference"] > 1000
    assert manifest["footprint"]["flash_bytes"] <= 64 * 1024
    header = (exported.out / "chainml_model.h").read_text()
    assert "chainml_infer" in header
    # The device protocol is the version's recipe: its shots and ridge strength, which the C
    # header carries as the on-device re-fit's default.
    recipe = Recipe.for_family("sine")
    protocol = manifest["device_protocol"]
    assert (protocol["shots"], protocol["ridge_lambda"]) == (
        recipe.device_shots, recipe.ridge_lambda,
    )  # fmt: skip
    assert manifest["recipe_digest"] == recipe.digest()
    assert f"#define CHAINML_RIDGE_LAMBDA {recipe.ridge_lambda!r}f" in header
    assert protocol["metric"] == "mse" and 0 < protocol["score"] < 10
    assert "bit-exact QEMU" in exported.stdout and "True" in exported.stdout


@pytest.mark.slow
def test_artifact_is_stored_and_recorded_beside_its_version(exported: Exported) -> None:
    assert exported.code == 0, exported.stderr
    cid = (exported.out / "artifact.cid").read_text().strip()
    ledger = exported.env.ledger()
    records = ledger.artifacts(1)
    assert (cid, "cortex-m4") in [(onchain_to_str(*r.cid), r.target_name) for r in records]
    assert ledger.artifacts(0) == []
    # The bundle fetched by CID (verified by the store) holds the same, runnable flatbuffer.
    store = exported.env.store()
    try:
        bundle = store.get(cid)
    finally:
        store.close()
    with tarfile.open(fileobj=io.BytesIO(bundle)) as tar:
        names = sorted(tar.getnames())
        tflite = tar.extractfile("model.tflite").read()  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert "firmware.elf" in names and "chainml_model.c" in names
    assert tflite == (exported.out / "model.tflite").read_bytes()
    x = np.arange(-128, 128, dtype=np.int8).reshape(-1, 1)
    assert tflm_run(tflite, x).shape == (256, 1)
    assert manifest["weights_cid"] == exported.env.version_cids()[1]


@pytest.mark.slow
def test_compressed_export_is_smaller_and_compared_with_the_int8_version(
    ledger_env: SwarmEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--compress distill:0.5``: the stored, recorded artifact is the student, bit-exact, in
    under half the flash of the int8 export of the same version, which the manifest reports
    beside the student's score under the device protocol."""
    out = tmp_path / "small"
    code = main(
        ["--data-dir", str(ledger_env.data_dir), "export", "1", "--out", str(out),
         "--compress", "distill:0.5", "--compress-steps", "40"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["compression"]
    assert c["spec"] == "distill:0.5" and c["steps"] == 40
    assert manifest["footprint"]["flash_bytes"] < 0.5 * c["baseline_flash_bytes"]
    assert c["flash_ratio"] == manifest["footprint"]["flash_bytes"] / c["baseline_flash_bytes"]
    score = manifest["device_protocol"]["score"]
    assert c["loss_vs_int8"] == pytest.approx((score - c["baseline_metric"]) / c["baseline_metric"])
    assert manifest["checks"]["bit_exact_tflm"] and manifest["checks"]["bit_exact_qemu"]
    assert not (out / "baseline").exists()  # the comparison build is not left behind
    cid = (out / "artifact.cid").read_text().strip()
    assert cid in [onchain_to_str(*r.cid) for r in ledger_env.ledger().artifacts(1)]
    assert "distill:0.5 vs int8" in captured.out


@pytest.mark.slow
def test_unknown_version_is_a_one_line_error(
    ledger_env: SwarmEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["--data-dir", str(ledger_env.data_dir), "export", "99", "--out", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "unknown version 99" in err and "0..1" in err and len(err.splitlines()) == 1


@pytest.mark.slow
def test_export_without_the_stored_weights_fails_clearly(
    ledger_env: SwarmEnv, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone else's data dir: same chain and deployments, none of the IPFS content."""
    code = main(
        ["--data-dir", str(tmp_path / "empty"), "export", "1", "--out", str(tmp_path / "o"),
         "--rpc-url", ledger_env.rpc_url,
         "--deployments", str(ledger_env.data_dir / "deployments.json")]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert ledger_env.version_cids()[1] in err


def test_bad_target_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--data-dir", str(tmp_path), "export", "1", "--target", "esp32"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert "unknown target 'esp32'" in err and "cortex-m4" in err and len(err.splitlines()) == 1


def test_missing_toolchain_points_to_make_setup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    monkeypatch.setenv("PATH", str(bare))
    code = main(["--data-dir", str(tmp_path), "export", "1", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1
    assert "arm-none-eabi-gcc not found" in err and "make setup" in err
    assert not (tmp_path / "o").exists()
    monkeypatch.setenv("PATH", os.defpath)


def test_every_family_has_a_deployable_architecture_that_maps_back_to_it() -> None:
    """A version of ``mlp-gasdrift`` (the MLP beside the spiking default) is calibrated and
    tested on gasdrift data; an architecture of no family is refused in one line."""
    from chainml.errors import ConfigError
    from chainml.mcu.export import deployable_arch, family_for_arch
    from chainml.meta.tasks import FAMILIES, get_family

    for name in FAMILIES:
        arch_id = deployable_arch(get_family(name))
        assert arch_id is not None, name
        assert family_for_arch(arch_id).name == name
    assert deployable_arch(get_family("gasdrift")) == "mlp-gasdrift"
    with pytest.raises(ConfigError, match="no task family uses architecture 'mlp-unknown'"):
        family_for_arch("mlp-unknown")
