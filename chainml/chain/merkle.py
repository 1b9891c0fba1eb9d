"""Merkle trees that OpenZeppelin's ``MerkleProof`` accepts (sorted-pair keccak256).

Leaves are double-hashed like OpenZeppelin's StandardMerkleTree
(``keccak256(bytes.concat(keccak256(abi.encode(...))))``) so a leaf can never be mistaken for
an inner node. Any tree built with sorted-pair hashing verifies; this one pairs neighbours
level by level and carries an odd last node up unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from eth_abi import encode
from eth_utils import to_checksum_address

from chainml.chain.eip712 import keccak256

EMPTY_ROOT = b"\x00" * 32


def hash_pair(a: bytes, b: bytes) -> bytes:
    return keccak256(a + b) if a < b else keccak256(b + a)


def standard_leaf(types: Sequence[str], values: Sequence[object]) -> bytes:
    return keccak256(keccak256(encode(list(types), list(values))))


def commitment_leaf(struct_hash: bytes, r: bytes, vs: bytes) -> bytes:
    """A batch leaf, as ``ChainMLLedger.challengeLeaf`` computes it."""
    words = (struct_hash, r, vs)
    if all(type(w) is bytes and len(w) == 32 for w in words):  # abi.encode of 3 bytes32
        return keccak256(keccak256(struct_hash + r + vs))
    return standard_leaf(["bytes32", "bytes32", "bytes32"], [struct_hash, r, vs])


_HEX_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")


def address_leaf(address: str) -> bytes:
    """A leaf of a proposal's included or excluded node list."""
    if type(address) is str and _HEX_ADDRESS.fullmatch(address):  # abi.encode(address)
        return keccak256(keccak256(bytes(12) + bytes.fromhex(address[2:])))
    return standard_leaf(["address"], [to_checksum_address(address)])


def reputation_leaf(address: str, score: int) -> bytes:
    """A leaf of a reputation table, as ``ChainMLLedger.proveReputations`` checks it:
    ``keccak256(bytes.concat(keccak256(abi.encode(address node, int64 score))))``."""
    value = int(score)
    if type(address) is str and _HEX_ADDRESS.fullmatch(address) and -(1 << 63) <= value < 1 << 63:
        word = value.to_bytes(32, "big", signed=True)  # abi.encode(int64) sign-extends
        return keccak256(keccak256(bytes(12) + bytes.fromhex(address[2:]) + word))
    return standard_leaf(["address", "int64"], [to_checksum_address(address), value])


class MerkleTree:
    """A tree over leaf hashes in the given order; ``proof(i)`` proves ``leaves[i]``."""

    def __init__(self, leaves: Sequence[bytes]) -> None:
        self.leaves = list(leaves)
        self._index = {leaf: i for i, leaf in reversed(list(enumerate(self.leaves)))}
        self.layers: list[list[bytes]] = [self.leaves]
        while len(self.layers[-1]) > 1:
            level = self.layers[-1]
            nxt = [hash_pair(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            self.layers.append(nxt)

    @property
    def root(self) -> bytes:
        """The root; all zero for an empty tree (an empty list proves nothing)."""
        return self.layers[-1][0] if self.leaves else EMPTY_ROOT

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < len(self.leaves):
            raise IndexError(f"leaf index {index} out of range 0..{len(self.leaves) - 1}")
        proof = []
        for level in self.layers[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                proof.append(level[sibling])
            index //= 2
        return proof

    def proof_for(self, leaf: bytes) -> list[bytes]:
        try:
            return self.proof(self._index[leaf])
        except KeyError:
            raise KeyError(f"leaf 0x{leaf.hex()} is not in the tree") from None


def process_proof(proof: Sequence[bytes], leaf: bytes) -> bytes:
    computed = leaf
    for sibling in proof:
        computed = hash_pair(computed, sibling)
    return computed


def verify(proof: Sequence[bytes], root: bytes, leaf: bytes) -> bool:
    return process_proof(proof, leaf) == root
