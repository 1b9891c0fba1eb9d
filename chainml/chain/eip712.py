"""EIP-712 commitments: the typed data a node signs, hashed exactly as the ledger hashes it.

``sign_commitment`` hashes the struct itself (eth-abi + keccak) and signs the digest with
eth-account, which is several times faster than building the typed-data dict for every
signature; ``typed_data`` builds that dict for wallets and for cross-checks against
``eth_account.messages.encode_typed_data`` (the tests assert both give the same digest).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "ChainML Ledger"
DOMAIN_VERSION = "1"
LOSS_SCALE = 10**9
"""Losses go on chain as unsigned fixed point with 9 decimals."""

COMMITMENT_FIELDS: list[dict[str, str]] = [
    {"name": "round", "type": "uint256"},
    {"name": "node", "type": "address"},
    {"name": "baseVersion", "type": "uint256"},
    {"name": "updateDigest", "type": "bytes32"},
    {"name": "updateCodec", "type": "uint64"},
    {"name": "numSamples", "type": "uint32"},
    {"name": "lossBefore", "type": "uint64"},
    {"name": "lossAfter", "type": "uint64"},
    {"name": "nonce", "type": "uint64"},
]
COMMITMENT_TYPE = (
    "Commitment(" + ",".join(f"{f['type']} {f['name']}" for f in COMMITMENT_FIELDS) + ")"
)
COMMITMENT_TYPEHASH = keccak(text=COMMITMENT_TYPE)
_DOMAIN_TYPEHASH = keccak(
    text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_ABI_TYPES = ["bytes32"] + [f["type"] for f in COMMITMENT_FIELDS]


MAX_FIXED = 2**64 - 1


def to_fixed(loss: float) -> int:
    """A non-negative loss as the ledger's 9-decimal fixed point, saturating at uint64's max
    (a diverged local step reports "huge", not an encoding error)."""
    if not loss >= 0:
        raise ValueError(f"loss must be a non-negative number, got {loss!r}")
    if loss == float("inf") or loss * LOSS_SCALE >= MAX_FIXED:
        return MAX_FIXED
    return round(loss * LOSS_SCALE)


def from_fixed(value: int) -> float:
    return value / LOSS_SCALE


@dataclass(frozen=True)
class Commitment:
    """What a node signs: its update (a CID) for a round, with sample count and losses."""

    round: int
    node: str
    base_version: int
    update_digest: bytes
    update_codec: int
    num_samples: int
    loss_before: int
    loss_after: int
    nonce: int

    def values(self) -> tuple[Any, ...]:
        return (
            self.round,
            to_checksum_address(self.node),
            self.base_version,
            self.update_digest,
            self.update_codec,
            self.num_samples,
            self.loss_before,
            self.loss_after,
            self.nonce,
        )

    def as_abi(self) -> tuple[Any, ...]:
        """The tuple web3 expects for the Solidity ``Commitment`` struct."""
        return self.values()

    def message(self) -> dict[str, Any]:
        names = [f["name"] for f in COMMITMENT_FIELDS]
        return dict(zip(names, self.values(), strict=True))

    def with_(self, **changes: Any) -> Commitment:
        return replace(self, **changes)


@dataclass(frozen=True)
class SignedCommitment:
    """A commitment with its signature, in both the 65-byte and compact (EIP-2098) forms."""

    commitment: Commitment
    r: bytes
    s: bytes
    v: int

    @property
    def vs(self) -> bytes:
        """EIP-2098 compact form: s with the parity of v in the top bit."""
        s_int = int.from_bytes(self.s, "big") | ((self.v - 27) << 255)
        return s_int.to_bytes(32, "big")

    @property
    def signature(self) -> bytes:
        return self.r + self.s + bytes([self.v])

    def relayed_abi(self) -> tuple[Any, ...]:
        """The tuple web3 expects for the Solidity ``RelayedCommitment`` struct."""
        c = self.commitment
        return (
            to_checksum_address(c.node),
            c.update_digest,
            c.update_codec,
            c.num_samples,
            c.loss_before,
            c.loss_after,
            c.nonce,
            self.r,
            self.vs,
        )


def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    """The ledger's EIP-712 domain separator (OpenZeppelin EIP712 with name and version)."""
    return keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                _DOMAIN_TYPEHASH,
                keccak(text=DOMAIN_NAME),
                keccak(text=DOMAIN_VERSION),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


def struct_hash(c: Commitment) -> bytes:
    return keccak(encode(_ABI_TYPES, [COMMITMENT_TYPEHASH, *c.values()]))


def digest(c: Commitment, separator: bytes) -> bytes:
    """The 32 bytes a node signs: keccak256(0x1901 || domainSeparator || structHash)."""
    return keccak(b"\x19\x01" + separator + struct_hash(c))


def typed_data(c: Commitment, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The full EIP-712 message, for ``eth_account`` ``encode_typed_data(full_message=...)``."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Commitment": COMMITMENT_FIELDS,
        },
        "primaryType": "Commitment",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": chain_id,
            "verifyingContract": to_checksum_address(verifying_contract),
        },
        "message": c.message(),
    }


def sign_commitment(
    account: LocalAccount | bytes | str, c: Commitment, separator: bytes
) -> SignedCommitment:
    """Sign ``c`` for the ledger whose domain separator is ``separator``."""
    key = account.key if isinstance(account, LocalAccount) else account
    signed = Account.unsafe_sign_hash(digest(c, separator), key)
    return SignedCommitment(
        commitment=c,
        r=signed.r.to_bytes(32, "big"),
        s=signed.s.to_bytes(32, "big"),
        v=signed.v,
    )
