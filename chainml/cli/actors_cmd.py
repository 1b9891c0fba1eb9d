"""``chainml validator|aggregator|gateway|challenger run``: one protocol party as a daemon.

Each command connects to any RPC URL and IPFS API, loads its own key from a key file or the
environment (never from an argument, which ``ps`` shows), and runs the actor's step on every
new block until SIGTERM or SIGINT (:mod:`chainml.actors.daemon`). State is read back from the
chain, so a killed daemon is simply started again. None of them listens on a port.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer

from chainml.cli.context import cli_context
from chainml.errors import ConfigError
from chainml.storage.store import IPFS_ENV

RpcUrl = Annotated[
    str | None,
    typer.Option(
        "--rpc-url", envvar="CHAINML_RPC_URL", help="Chain RPC URL (default: the local chain)."
    ),
]
DeploymentsFile = Annotated[
    Path | None,
    typer.Option(help="Deployments file (default: <data dir>/deployments.json)."),
]
Ipfs = Annotated[str, typer.Option(envvar=IPFS_ENV, help="`embedded` or a Kubo RPC API URL.")]
KeyFile = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        envvar="CHAINML_KEY_FILE",
        help="File with this actor's private key (mode 600); or set CHAINML_KEY.",
    ),
]
Poll = Annotated[float, typer.Option(help="Seconds between looks for a new block.")]
Once = Annotated[bool, typer.Option("--once", help="Take one step and exit.")]

validator_app = typer.Typer(
    help="Run a validator: recompute every proposal from chain and IPFS, commit and reveal "
    "its vote.",
    no_args_is_help=True,
)
aggregator_app = typer.Typer(
    help="Run an aggregator: open rounds, propose each round's aggregate, finalize, settle.",
    no_args_is_help=True,
)
gateway_app = typer.Typer(
    help="Run a gateway: put the commitments nodes deliver to its inbox on chain.",
    no_args_is_help=True,
)
challenger_app = typer.Typer(
    help="Run a challenger: check every batch leaf and challenge the invalid ones.",
    no_args_is_help=True,
)


def _setup(
    ctx: typer.Context,
    role: str,
    rpc_url: str | None,
    deployments: Path | None,
    ipfs: str,
    key_file: Path | None,
):
    from chainml.actors.env import open_env
    from chainml.actors.keys import load_key
    from chainml.chain.deployments import deployments_path
    from chainml.cli.deploy_cmd import local_rpc_url

    account = load_key(key_file)  # first: a bad key is refused before anything else
    data_dir = cli_context(ctx).data_dir
    verbose = cli_context(ctx).verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format=f"%(asctime)s {role} %(levelname)s %(message)s",
    )
    for noisy in ("web3", "urllib3", "ipfshttpclient"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    url = rpc_url or local_rpc_url(data_dir)
    env = open_env(url, deployments or deployments_path(data_dir), ipfs, data_dir)
    logging.getLogger("chainml.actors").info(
        "%s %s on %s (ledger %s), store %s",
        role,
        account.address,
        url,
        env.ledger.ledger.address,
        ipfs,
    )
    return env, account


def _require_role(env, role: str, address: str) -> None:
    if not env.ledger.has_role(role, address):
        raise ConfigError(
            f"{address} has no {role} role on the ledger at {env.ledger.ledger.address}; "
            "the admin grants it (deploy parameters, or grantRole)"
        )


def _loop(name: str, env, step, poll: float, once: bool) -> None:
    from chainml.actors.daemon import Stop, run_loop
    from chainml.actors.env import chain_errors

    stop = Stop()
    stop.install()
    with chain_errors(env.rpc_url):
        run_loop(name, step, lambda: int(env.w3.eth.block_number), poll_s=poll, stop=stop,
                 once=once)  # fmt: skip


@validator_app.command("run")
def validator_run(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    ipfs: Ipfs = "embedded",
    key_file: KeyFile = None,
    secret_file: Annotated[
        Path | None,
        typer.Option(
            help="This validator's vote secret (created on first use, mode 600; default: "
            "<data dir>/validator-secrets/<address>.key). Keep it: reveals need it."
        ),
    ] = None,
    poll: Poll = 0.2,
    once: Once = False,
) -> None:
    """Run a validator: recompute every proposal from chain and IPFS, commit and reveal its
    vote."""
    from chainml.actors.validator import Validator, ValidatorSetup, validator_secret

    env, account = _setup(ctx, "validator", rpc_url, deployments, ipfs, key_file)
    _require_role(env, "validator", account.address)
    setup = ValidatorSetup(
        rpc_url=env.rpc_url,
        ledger_address=env.ledger.ledger.address,
        voting_address=env.ledger.voting.address,
        store_spec=ipfs,
        data_dir=str(env.data_dir),
        from_block=env.from_block,
    )
    secret = validator_secret(env.data_dir, account, secret_file)
    secret.key()  # create it now (or fail on a corrupt one) rather than mid-vote
    actor = Validator(env.ledger, account, setup, secret)
    _loop("validator", env, actor.step, poll, once)


@aggregator_app.command("run")
def aggregator_run(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    ipfs: Ipfs = "embedded",
    key_file: KeyFile = None,
    close_at: Annotated[
        int | None,
        typer.Option(
            help="Close a round's commit phase early once this many commitments are in "
            "(default: wait for the commit deadline)."
        ),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help="Open no round after round N (default: keep going).")
    ] = None,
    poll: Poll = 0.2,
    once: Once = False,
) -> None:
    """Run an aggregator: open rounds, propose each round's aggregate, finalize, settle."""
    from chainml.actors.aggregator import Aggregator

    env, account = _setup(ctx, "aggregator", rpc_url, deployments, ipfs, key_file)
    _require_role(env, "aggregator", account.address)
    if close_at is not None and close_at < 1:
        raise ConfigError(f"--close-at must be at least 1, got {close_at}")
    actor = Aggregator(
        env.ledger, env.store, account, from_block=env.from_block, close_at=close_at,
        max_rounds=rounds,
    )  # fmt: skip
    _loop("aggregator", env, actor.step, poll, once)


@gateway_app.command("run")
def gateway_run(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    ipfs: Ipfs = "embedded",
    key_file: KeyFile = None,
    mode: Annotated[str, typer.Option(help="relayed or batched.")] = "batched",
    inbox: Annotated[
        Path | None,
        typer.Option(help="Directory nodes deliver commitments to (default: <data dir>/inbox)."),
    ] = None,
    chunk: Annotated[int, typer.Option(help="Commitments per transaction or batch.")] = 256,
    poll: Poll = 0.2,
    once: Once = False,
) -> None:
    """Run a gateway: put the commitments nodes deliver to its inbox on chain."""
    from chainml.actors.gateway import GATEWAY_MODES, Gateway
    from chainml.actors.inbox import Inbox

    if mode not in GATEWAY_MODES:
        raise ConfigError(f"unknown gateway mode {mode!r}: use relayed or batched")
    if chunk < 1:
        raise ConfigError(f"--chunk must be at least 1, got {chunk}")
    env, account = _setup(ctx, "gateway", rpc_url, deployments, ipfs, key_file)
    box = Inbox(inbox or env.data_dir / "inbox")
    actor = Gateway(
        env.ledger, env.store, account, mode, from_block=env.from_block, inbox=box, chunk=chunk
    )
    if deposited := actor.ensure_bond():
        logging.getLogger("chainml.actors").info("gateway deposited a bond of %d wei", deposited)
    _loop("gateway", env, actor.step, poll, once)


@challenger_app.command("run")
def challenger_run(
    ctx: typer.Context,
    rpc_url: RpcUrl = None,
    deployments: DeploymentsFile = None,
    ipfs: Ipfs = "embedded",
    key_file: KeyFile = None,
    poll: Poll = 0.2,
    once: Once = False,
) -> None:
    """Run a challenger: check every batch leaf and challenge the invalid ones."""
    from chainml.actors.challenger import Challenger

    env, account = _setup(ctx, "challenger", rpc_url, deployments, ipfs, key_file)
    actor = Challenger(env.ledger, env.store, account, env.from_block)
    _loop("challenger", env, actor.step, poll, once)
