"""Storage throughput: put and get MB/s for 10 KB, 1 MB and 100 MB objects on both backends.

The embedded store is compared with plain ``hashlib.sha256`` over the same objects, since
hashing is the work it cannot avoid (target: put and get each within 2x of it, reported per
size as ``put_within_2x`` / ``get_within_2x`` and overall as ``embedded_all_within_2x``).
Every embedded get verifies every block against its CID and every put writes every byte.
The Kubo RPC backend runs against a local js-ipfs node this script starts (via
``chainml.services.ipfs``) and stops again.

Every put stores fresh random content (a re-put of known content is a no-op). Each figure is
the best of ``--repeat`` runs. The last stdout line is one JSON object with all results.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from chainml.services.ipfs import LocalIpfsNode
from chainml.storage.embedded import EmbeddedStore
from chainml.storage.kubo import KuboStore
from chainml.storage.store import Store

SIZES = {"10KB": 10_000, "1MB": 1_000_000, "100MB": 100_000_000}
BATCH_BYTES = {"10KB": 5_000_000, "1MB": 30_000_000, "100MB": 200_000_000}
"""Bytes moved per timed run: enough objects that per-call overhead is averaged out."""
KUBO_BATCH_BYTES = {"10KB": 2_000_000, "1MB": 20_000_000, "100MB": 100_000_000}


def objects(size: int, total: int, rng: np.random.Generator) -> list[bytes]:
    return [rng.bytes(size) for _ in range(max(1, total // size))]


def mbps(nbytes: int, seconds: float) -> float:
    return round(nbytes / 1e6 / max(seconds, 1e-9), 1)


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(store: Store, size: int, total: int, repeat: int, rng, with_sha: bool) -> dict:
    best = {"put": 0.0, "get": 0.0, "sha256": 0.0}
    count = 0
    for _ in range(repeat):
        batch = objects(size, total, rng)
        count = len(batch)
        nbytes = size * count
        cids = []
        put = timed(lambda b=batch, c=cids: c.extend(store.put(x) for x in b))
        got: list[bytes] = []
        get = timed(lambda c=cids, g=got: g.extend(store.get(x) for x in c))
        if got != batch:
            raise SystemExit("round trip mismatch")
        del got
        best["put"] = max(best["put"], mbps(nbytes, put))
        best["get"] = max(best["get"], mbps(nbytes, get))
        if with_sha:
            sha = timed(lambda b=batch: [hashlib.sha256(x).digest() for x in b])
            best["sha256"] = max(best["sha256"], mbps(nbytes, sha))
        for cid in cids:
            store.unpin(cid)
    result: dict[str, object] = {"objects_per_run": count, "put": best["put"], "get": best["get"]}
    if with_sha:
        result["sha256"] = best["sha256"]
        result["sha256_over_put"] = round(best["sha256"] / best["put"], 2)
        result["sha256_over_get"] = round(best["sha256"] / best["get"], 2)
        result["put_within_2x"] = best["sha256"] <= 2 * best["put"]
        result["get_within_2x"] = best["sha256"] <= 2 * best["get"]
        result["within_2x"] = result["put_within_2x"] and result["get_within_2x"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (best is kept)")
    parser.add_argument("--no-kubo", action="store_true", help="skip the js-ipfs backend")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(2024)
    work = Path(tempfile.mkdtemp(prefix="chainml-bench-storage-"))
    report: dict[str, object] = {
        "bench": "storage",
        "unit": "MB/s (1e6 bytes per second)",
        "method": f"best of {args.repeat} runs, fresh random content per run",
        "cpus": os.cpu_count(),
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
    }
    node = None
    try:
        embedded = EmbeddedStore(work / "embedded")
        results = {}
        for label, size in SIZES.items():
            results[label] = measure(embedded, size, BATCH_BYTES[label], args.repeat, rng, True)
            print(f"embedded {label}: {results[label]}", flush=True)
        report["embedded"] = results
        report["embedded_within_2x_of_sha256"] = {
            label: {"put": r["put_within_2x"], "get": r["get_within_2x"]}
            for label, r in results.items()
        }
        report["embedded_all_within_2x"] = all(r["within_2x"] for r in results.values())
        if not args.no_kubo:
            node = LocalIpfsNode(work / "ipfs-data")
            info = node.up()
            kubo = KuboStore(info.api_url, timeout=120.0)
            results = {}
            try:
                for label, size in SIZES.items():
                    results[label] = measure(kubo, size, KUBO_BATCH_BYTES[label], 1, rng, False)
                    print(f"kubo (js-ipfs) {label}: {results[label]}", flush=True)
            finally:
                kubo.close()
            report["kubo"] = {"node": "js-ipfs 0.18.1 (Kubo RPC API)", "runs": 1, **results}
    finally:
        if node is not None:
            node.down()
        shutil.rmtree(work, ignore_errors=True)
    report["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    sys.stdout.write(json.dumps(report, separators=(",", ":")) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
