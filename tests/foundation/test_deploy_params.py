"""The deployment parameters file: what scripts/deploy.py, `chainml deploy` and the tests read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account
from eth_utils import keccak

from chainml.chain.deploy import DEV_PARAMS_FILE, GenesisModel, load_params
from chainml.chain.types import ReputationParams, SecurityParams
from chainml.errors import ConfigError

DEV = [Account.from_key(keccak(text=f"dev-{i}")).address for i in range(10)]


def test_the_development_parameters() -> None:
    params = load_params(DEV_PARAMS_FILE, DEV)
    assert params.aggregators == (DEV[1],) and params.validators == tuple(DEV[2:5])
    assert params.gateways == () and params.admin is None
    assert params.genesis_model == GenesisModel("sine", 0)
    # the library's defaults are the development deployment's
    assert params.security == SecurityParams() and params.reputation == ReputationParams()


def test_addresses_and_a_stored_genesis(tmp_path: Path) -> None:
    path = tmp_path / "params.json"
    path.write_text(
        json.dumps(
            {
                "genesis_weights": {"digest": "0x" + "ab" * 32, "codec": 85},
                "genesis": {"task": "meter", "seed": 1},
                "aggregators": [DEV[3].lower()],
                "validators": [7],
                "admin": 9,
                "security": {"quorum_bps": 7_500},
            }
        )
    )
    params = load_params(path, DEV)
    assert params.genesis_weights == (bytes.fromhex("ab" * 32), 85)
    assert params.genesis_model is None  # a stored genesis wins over a model to store
    assert params.aggregators == (DEV[3],) and params.validators == (DEV[7],)
    assert params.admin == DEV[9] and params.security.quorum_bps == 7_500


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"validators": [12]}, "account index 12, but the chain unlocks 10 accounts"),
        ({"validators": ["0x1234"]}, "'0x1234' is not an address"),
        ({"aggregators": [True]}, "neither an address nor an account index"),
        ({"security": {"quorum": 1}}, "unexpected keyword argument 'quorum'"),
        ({"genesis": {"task": "sine"}}, "'seed'"),
    ],
)
def test_bad_parameters_are_one_clear_error(tmp_path: Path, body: dict, words: str) -> None:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="cannot read deploy parameters") as caught:
        load_params(path, DEV)
    assert words in str(caught.value) and str(path) in str(caught.value)
