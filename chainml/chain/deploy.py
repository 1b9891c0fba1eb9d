"""Deploy the chainml contracts, wire their roles and set the genesis version.

``deploy`` is the one deployment path: ``scripts/deploy.py`` (brownie), the tests and the
bench all call it, so what the tests exercise is what users deploy. Parameters come from a
``DeployParams`` (or a JSON file with the same fields, see ``load_params``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from chainml.chain.client import LEDGER, PARAMS, VOTING, Ledger, Sender, TxRunner, sender_address
from chainml.chain.compile import compile_contracts
from chainml.chain.deployments import Deployments
from chainml.chain.errors import RevertDecoder
from chainml.chain.types import CODEC_RAW, OnchainCid, ReputationParams, SecurityParams, cid_abi
from chainml.errors import ConfigError

GENESIS_PLACEHOLDER: OnchainCid = (
    bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    CODEC_RAW,
)
"""sha256 of empty content as a raw CID: a stand-in until real initial weights are on IPFS."""


@dataclass(frozen=True)
class DeployParams:
    """What to deploy with. Accounts listed here get their roles at deployment."""

    genesis_weights: OnchainCid = GENESIS_PLACEHOLDER
    genesis_metrics: OnchainCid | None = None
    reputation: ReputationParams = field(default_factory=ReputationParams)
    security: SecurityParams = field(default_factory=SecurityParams)
    """Quorum, windows, bonds...: fixed here, changed later only through the timelock."""
    aggregators: tuple[str, ...] = ()
    validators: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    """Gateways the admin approves: any node may name them (others need their consent)."""
    admin: str | None = None
    """Receives the admin role; defaults to the deployer."""


def load_params(path: Path) -> DeployParams:
    """Read deploy parameters from JSON: digests as 0x-hex, codecs as ints."""
    try:
        raw: dict[str, Any] = json.loads(path.read_text())

        def cid(value: Any) -> OnchainCid | None:
            if value is None:
                return None
            return (bytes.fromhex(str(value["digest"]).removeprefix("0x")), int(value["codec"]))

        return DeployParams(
            genesis_weights=cid(raw.get("genesis_weights")) or GENESIS_PLACEHOLDER,
            genesis_metrics=cid(raw.get("genesis_metrics")),
            reputation=ReputationParams(**raw.get("reputation", {})),
            security=SecurityParams(**raw.get("security", {})),
            aggregators=tuple(raw.get("aggregators", ())),
            validators=tuple(raw.get("validators", ())),
            gateways=tuple(raw.get("gateways", ())),
            admin=raw.get("admin"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read deploy parameters from {path}: {exc}") from exc


def deploy(w3: Web3, deployer: Sender, params: DeployParams | None = None) -> Deployments:
    """Deploy ChainMLLedger (which creates its ChainMLParams) and ChainMLVoting, bind the
    voting contract (the one VOTING_ROLE grant, locked afterwards), grant roles, approve
    gateways, and describe the result."""
    params = params or DeployParams()
    artifacts = compile_contracts()
    runner = TxRunner(
        w3, RevertDecoder([artifacts[LEDGER].abi, artifacts[VOTING].abi, artifacts[PARAMS].abi])
    )
    me = sender_address(deployer)
    admin = Web3.to_checksum_address(params.admin) if params.admin else me

    ledger_factory = w3.eth.contract(abi=artifacts[LEDGER].abi, bytecode=artifacts[LEDGER].bytecode)
    receipt = runner.send(
        ledger_factory.constructor(
            me,
            cid_abi(params.genesis_weights),
            cid_abi(params.genesis_metrics),
            params.reputation.as_abi(),
            params.security.as_abi(),
        ),
        deployer,
        action="deploy ChainMLLedger",
    )
    ledger_address = receipt["contractAddress"]
    first_block = receipt["blockNumber"]
    voting_factory = w3.eth.contract(abi=artifacts[VOTING].abi, bytecode=artifacts[VOTING].bytecode)
    receipt = runner.send(
        voting_factory.constructor(ledger_address), deployer, action="deploy ChainMLVoting"
    )
    voting_address = receipt["contractAddress"]

    ledger = Ledger(w3, ledger_address, voting_address)
    ledger.tx = runner  # share nonce tracking with the deploy transactions
    ledger.grant_role("voting", voting_address, deployer)
    for account in params.aggregators:
        ledger.grant_role("aggregator", account, deployer)
    for account in params.validators:
        ledger.grant_role("validator", account, deployer)
    for account in params.gateways:
        ledger.approve_gateway(account, True, deployer)
    if admin != me:
        ledger.grant_role("admin", admin, deployer)
        ledger.revoke_role("admin", me, deployer)

    return Deployments(
        chain_id=runner.chain_id,
        contracts={LEDGER: ledger_address, VOTING: voting_address},
        deployer=me,
        block_number=first_block,
        extra={
            "admin": admin,
            "aggregators": list(params.aggregators),
            "validators": list(params.validators),
            "gateways": list(params.gateways),
            "params_contract": ledger.params.address,
            "security": asdict(params.security),
            "genesis_weights": {
                "digest": "0x" + params.genesis_weights[0].hex(),
                "codec": params.genesis_weights[1],
            },
        },
    )
