"""A node's update must be the same bytes in any process: resumes and validators rely on it."""

from __future__ import annotations

import os
import subprocess
import sys

SCRIPT = """
import hashlib
import torch
from chainml.meta.federated import node_step
from chainml.meta.models import get_model
from chainml.meta.tasks import get_family
from chainml.swarm.node_job import node_config
from chainml.protocol.payloads import encode_update

model, family = get_model("mlp-sine"), get_family("sine")
params = model.init(0)
config = node_config(round_id=1)
digest = hashlib.sha256()
for index in range(6):
    task = family.task(0, index, "train")
    digest.update(encode_update(node_step(model, params, task, config).update))
print(digest.hexdigest())
"""


def test_node_updates_do_not_depend_on_hash_seed_or_thread_count() -> None:
    outputs = set()
    for hash_seed, threads in (("1", "1"), ("2", "2"), ("random", "1")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "OMP_NUM_THREADS": threads}
        result = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(result.stdout.strip())
    assert len(outputs) == 1, outputs
