"""Deployment parameters, the deployments record, and a web3 deploy for harnesses and tests.

Users deploy with brownie: ``brownie run scripts/deploy.py`` (or ``chainml deploy``, which
runs that script) deploys with brownie's contract containers. Both that script and the web3
``deploy`` below, which the swarm harness, the tests and the benches use on their own chains,
read their parameters through :func:`load_params` (by default from ``deploy_params.json``
beside this module), deploy the same compiled bytecode (:mod:`chainml.chain.artifacts`) and
describe the result with :func:`deployment_record`, so what the tests exercise is what users
deploy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from chainml.chain.artifacts import LEDGER, PARAMS, VOTING, abi, artifact
from chainml.chain.client import Ledger, Sender, TxRunner, sender_address
from chainml.chain.deployments import Deployments
from chainml.chain.errors import RevertDecoder
from chainml.chain.types import CODEC_RAW, OnchainCid, ReputationParams, SecurityParams, cid_abi
from chainml.errors import ConfigError

DEV_PARAMS_FILE = Path(__file__).with_name("deploy_params.json")
"""The deployment parameters of a local development chain: ``scripts/deploy.py``,
``chainml deploy`` and the tests read them."""
PARAMS_ENV = "CHAINML_DEPLOY_PARAMS"
"""Names another parameters file for ``brownie run scripts/deploy.py``."""

GENESIS_PLACEHOLDER: OnchainCid = (
    bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    CODEC_RAW,
)
"""sha256 of empty content as a raw CID: a stand-in for contract tests, which never fetch it."""


@dataclass(frozen=True)
class GenesisModel:
    """The seeded initial model a deployer stores as version 0 (its file records the learning
    recipe every later version follows)."""

    task: str = "sine"
    seed: int = 0


@dataclass(frozen=True)
class DeployParams:
    """What to deploy with. Accounts listed here get their roles at deployment."""

    genesis_weights: OnchainCid = GENESIS_PLACEHOLDER
    genesis_metrics: OnchainCid | None = None
    genesis_model: GenesisModel | None = None
    """When set (and ``genesis_weights`` is not), the deployer stores this model first and
    uses its CID as version 0."""
    reputation: ReputationParams = field(default_factory=ReputationParams)
    security: SecurityParams = field(default_factory=SecurityParams)
    """Quorum, windows, bonds...: fixed here, changed later only through the timelock."""
    aggregators: tuple[str, ...] = ()
    validators: tuple[str, ...] = ()
    gateways: tuple[str, ...] = ()
    """Gateways the admin approves: any node may name them (others need their consent)."""
    admin: str | None = None
    """Receives the admin role; defaults to the deployer."""


def load_params(path: Path = DEV_PARAMS_FILE, dev_accounts: Sequence[str] = ()) -> DeployParams:
    """Deployment parameters from JSON: CIDs as ``{"digest": "0x..", "codec": n}``, version 0
    as ``genesis_weights`` or as ``genesis: {"task", "seed"}``; accounts as addresses or as
    indices into ``dev_accounts`` (the chain's unlocked development accounts)."""
    try:
        raw: dict[str, Any] = json.loads(Path(path).read_text())

        def cid(value: Any) -> OnchainCid | None:
            if value is None:
                return None
            return (bytes.fromhex(str(value["digest"]).removeprefix("0x")), int(value["codec"]))

        def accounts(key: str) -> tuple[str, ...]:
            return tuple(_account(item, dev_accounts, key) for item in raw.get(key, ()))

        genesis = raw.get("genesis")
        admin = raw.get("admin")
        return DeployParams(
            genesis_weights=cid(raw.get("genesis_weights")) or GENESIS_PLACEHOLDER,
            genesis_metrics=cid(raw.get("genesis_metrics")),
            genesis_model=None
            if genesis is None or raw.get("genesis_weights")
            else GenesisModel(str(genesis["task"]), int(genesis["seed"])),
            reputation=ReputationParams(**raw.get("reputation", {})),
            security=SecurityParams(**raw.get("security", {})),
            aggregators=accounts("aggregators"),
            validators=accounts("validators"),
            gateways=accounts("gateways"),
            admin=None if admin is None else _account(admin, dev_accounts, "admin"),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read deploy parameters from {path}: {exc}") from exc


def _account(value: Any, dev_accounts: Sequence[str], key: str) -> str:
    if isinstance(value, bool):
        raise ValueError(f"{key}: {value!r} is neither an address nor an account index")
    if isinstance(value, int):
        if not 0 <= value < len(dev_accounts):
            raise ValueError(
                f"{key}: account index {value}, but the chain unlocks {len(dev_accounts)} accounts"
            )
        return Web3.to_checksum_address(dev_accounts[value])
    if not Web3.is_address(value):
        raise ValueError(f"{key}: {value!r} is not an address")
    return Web3.to_checksum_address(value)


def deployment_record(
    *,
    chain_id: int,
    ledger: str,
    voting: str,
    params_contract: str,
    deployer: str,
    admin: str,
    block_number: int,
    params: DeployParams,
) -> Deployments:
    """What a deployment writes to ``deployments.json`` (both deploy paths)."""
    return Deployments(
        chain_id=chain_id,
        contracts={LEDGER: ledger, VOTING: voting},
        deployer=deployer,
        block_number=block_number,
        extra={
            "admin": admin,
            "aggregators": list(params.aggregators),
            "validators": list(params.validators),
            "gateways": list(params.gateways),
            "params_contract": params_contract,
            "security": asdict(params.security),
            "genesis_weights": {
                "digest": "0x" + params.genesis_weights[0].hex(),
                "codec": params.genesis_weights[1],
            },
        },
    )


def deploy(w3: Web3, deployer: Sender, params: DeployParams | None = None) -> Deployments:
    """Deploy ChainMLLedger (which creates its ChainMLParams) and ChainMLVoting, bind the
    voting contract (the one VOTING_ROLE grant, locked afterwards), grant roles, approve
    gateways, and describe the result. ``params.genesis_weights`` is version 0 as given."""
    params = params or DeployParams()
    runner = TxRunner(w3, RevertDecoder([abi(LEDGER), abi(VOTING), abi(PARAMS)]))
    me = sender_address(deployer)
    admin = Web3.to_checksum_address(params.admin) if params.admin else me

    ledger_factory = w3.eth.contract(abi=abi(LEDGER), bytecode=artifact(LEDGER).bytecode)
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
    voting_factory = w3.eth.contract(abi=abi(VOTING), bytecode=artifact(VOTING).bytecode)
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

    return deployment_record(
        chain_id=runner.chain_id,
        ledger=ledger_address,
        voting=voting_address,
        params_contract=ledger.params.address,
        deployer=me,
        admin=admin,
        block_number=first_block,
        params=params,
    )
