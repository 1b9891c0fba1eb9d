"""brownie script: attach the deployed chainml contracts, then (with -I) open brownie's console.

    brownie run scripts/console.py --network anvil --interactive

``chainml console`` runs this script and opens the same console. There, ``ledger`` and
``voting`` (also ``ChainMLLedger[-1]`` and ``ChainMLVoting[-1]``) are the deployed contracts,
with brownie's usual helpers (``accounts``, ``chain``, ``history``).
"""

from __future__ import annotations

from brownie import ChainMLLedger, ChainMLVoting

from chainml.chain.deployments import deployments_path, load_deployments
from chainml.paths import data_dir


def main() -> tuple[object, object]:
    global ledger, voting  # the console opened by --interactive shows module globals
    path = deployments_path(data_dir())
    deployments = load_deployments(path)
    if deployments is None:
        raise SystemExit(f"no deployments at {path}: run `chainml deploy` first")
    ledger = ChainMLLedger.at(deployments.address("ChainMLLedger"))
    voting = ChainMLVoting.at(deployments.address("ChainMLVoting"))
    print(f"ledger = ChainMLLedger at {ledger.address}, current version {ledger.currentVersion()}")
    print(f"voting = ChainMLVoting at {voting.address}")
    print("try: ledger.currentRound(), ledger.nodeInfo(address), voting.proposal(1)")
    return ledger, voting


ledger: object = None
voting: object = None
