"""A tiny real contract, compiled through the project's solc adapter, for lifecycle tests.

The lifecycle tests must not depend on the ledger contracts' evolving constructor arguments, yet
must deploy really compiled code: this contract imports OpenZeppelin to exercise the remapping.
"""

from __future__ import annotations

from typing import Any

import solcx
from web3 import Web3

from chainml.paths import node_modules
from chainml.toolchain import use_project_solc

PROBE_SOURCE = """
// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
contract Probe is Ownable {
    uint256 public value;
    event ValueSet(uint256 value);
    constructor(uint256 initial) Ownable(msg.sender) { value = initial; }
    function set(uint256 newValue) external onlyOwner { value = newValue; emit ValueSet(newValue); }
}
"""


def compile_probe() -> dict[str, Any]:
    binary = use_project_solc()
    oz = node_modules() / "@openzeppelin"
    output = solcx.compile_standard(
        {
            "language": "Solidity",
            "sources": {"Probe.sol": {"content": PROBE_SOURCE}},
            "settings": {
                "evmVersion": "shanghai",
                "remappings": [f"@openzeppelin/={oz}/"],
                "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object"]}},
            },
        },
        solc_binary=binary,
        allow_paths=[str(node_modules())],
    )
    return output["contracts"]["Probe.sol"]["Probe"]


def deploy_probe(w3: Web3, initial: int) -> str:
    artifact = compile_probe()
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["evm"]["bytecode"]["object"])
    tx = factory.constructor(initial).transact({"from": w3.eth.accounts[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30)
    assert receipt["status"] == 1
    return str(receipt["contractAddress"])


def read_probe(w3: Web3, address: str) -> int:
    contract = w3.eth.contract(address=address, abi=compile_probe()["abi"])
    return int(contract.functions.value().call())
