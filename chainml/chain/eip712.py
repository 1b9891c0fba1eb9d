"""EIP-712 commitments: the typed data a node signs, hashed exactly as the ledger hashes it.

Thousands of simulated nodes sign, and every gatherer re-hashes every batch leaf, so the hot
path avoids the generic encoders: ``struct_hash`` packs the nine static fields as 32-byte words
itself (falling back to eth-abi, and its errors, for any value outside the plain types and
ranges), the domain separator is computed once per ledger, and ``sign_commitment`` signs the
digest with libsecp256k1 (coincurve) directly, which is what eth-account does underneath
(RFC 6979 nonces, low s), minus its per-call key objects. ``typed_data`` builds the full
message for wallets and for cross-checks: the tests assert that both paths give the same digest
and the same signature as ``eth_account``'s typed-data signing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from coincurve import PrivateKey, PublicKey
from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

try:  # safe-pysha3 (installed with eth-brownie): about 10x faster per call than eth-hash
    from sha3 import keccak_256 as _keccak_256
except ImportError:  # pragma: no cover - eth-hash's backend then does it
    _keccak_256 = None


def keccak256(data: bytes) -> bytes:
    """keccak256 of ``data`` (what ``eth_utils.keccak(data)`` returns, with less overhead)."""
    if _keccak_256 is None:  # pragma: no cover
        return keccak(data)
    return _keccak_256(data).digest()


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
_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]{40}")
_UINT_BITS = (256, None, 256, None, 64, 32, 64, 64, 64)
"""Bit width of each uint field in ``Commitment.values()`` order (None: not a uint)."""


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
    """keccak256(abi.encode(COMMITMENT_TYPEHASH, ...fields)), as the ledger computes it."""
    packed = _packed_fields(c)
    if packed is None:  # an unusual value: let eth-abi encode it, or raise its error
        return keccak(encode(_ABI_TYPES, [COMMITMENT_TYPEHASH, *c.values()]))
    return keccak256(COMMITMENT_TYPEHASH + packed)


def _packed_fields(c: Commitment) -> bytes | None:
    """The fields as ABI words, or None unless every value is a plain in-range int, a hex
    address string or exactly 32 bytes (then the words equal eth-abi's byte for byte)."""
    node = c.node
    digest32 = c.update_digest
    if type(node) is not str or _ADDRESS.fullmatch(node) is None:
        return None
    if type(digest32) is not bytes or len(digest32) != 32:
        return None
    words = []
    values = (c.round, None, c.base_version, None, c.update_codec, c.num_samples,
              c.loss_before, c.loss_after, c.nonce)  # fmt: skip
    for value, bits in zip(values, _UINT_BITS, strict=True):
        if bits is None:
            continue
        if type(value) is not int or not 0 <= value < 1 << bits:
            return None
        words.append(value.to_bytes(32, "big"))
    address = bytes(12) + bytes.fromhex(node[2:])
    return words[0] + address + words[1] + digest32 + b"".join(words[2:])


def digest(c: Commitment, separator: bytes) -> bytes:
    """The 32 bytes a node signs: keccak256(0x1901 || domainSeparator || structHash)."""
    return typed_digest(struct_hash(c), separator)


def typed_digest(struct: bytes, separator: bytes) -> bytes:
    """:func:`digest` from a struct hash already computed."""
    return keccak256(b"\x19\x01" + separator + struct)


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
    if type(key) is not bytes or len(key) != 32:
        signed = Account.unsafe_sign_hash(digest(c, separator), key)  # hex str, int...
        return SignedCommitment(c, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"),
                                signed.v)  # fmt: skip
    # What eth-account does underneath (eth-keys' coincurve backend), without its objects.
    sig = PrivateKey(key).sign_recoverable(digest(c, separator), hasher=None)
    return SignedCommitment(commitment=c, r=sig[:32], s=sig[32:64], v=sig[64] + 27)


def address_of_key(key: bytes) -> str:
    """The checksummed address of a 32-byte private key (``Account.from_key(key).address``)."""
    public = PublicKey.from_secret(key).format(compressed=False)[1:]
    return checksum_address(keccak256(public)[-20:])


@lru_cache(maxsize=1 << 17)
def _checksum_hex(lower: str) -> str:
    """EIP-55 of a lower-case 40-digit hex address (no prefix)."""
    hashed = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c > "9" and hashed[i] >= "8" else c for i, c in enumerate(lower)
    )


def checksum_address(address: str | bytes) -> str:
    """``eth_utils.to_checksum_address(address)``, fast for 20 bytes and hex strings.

    A round at 10,000 nodes checksums every committer's address several times (evidence, the
    reputation table, node lists); eth-utils costs about 40 µs a call (generic input handling
    and a pure-Python keccak), this a cache hit or one C keccak. Other inputs go to eth-utils,
    with its errors. A test pins both to the same output.
    """
    if type(address) is bytes and len(address) == 20:
        return _checksum_hex(address.hex())
    if type(address) is str and _ADDRESS.fullmatch(address):
        return _checksum_hex(address[2:].lower())
    return to_checksum_address(address)


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def recover_signer(msg_hash: bytes, r: bytes, s: bytes, v: int) -> bytes:
    """The 20-byte address whose key signed ``msg_hash`` (``v`` is 27 or 28).

    Accepts exactly what ``eth_keys.keys.Signature(vrs=(v - 27, r, s))`` and its
    ``recover_public_key_from_msg_hash`` accept, through libsecp256k1 directly (a fifth of the
    time, without key objects); raises ``ValueError`` naming the fault otherwise.
    """
    r_int, s_int = int.from_bytes(r, "big"), int.from_bytes(s, "big")
    if v not in (27, 28):
        raise ValueError(f"v must be 27 or 28, got {v}")
    if not (r_int < SECP256K1_N and s_int < SECP256K1_N):
        raise ValueError("r and s must be below the curve order")
    signature = r_int.to_bytes(32, "big") + s_int.to_bytes(32, "big") + bytes((v - 27,))
    try:
        public = PublicKey.from_signature_and_message(signature, msg_hash, hasher=None)
    except Exception as exc:  # coincurve raises ValueError or its own errors
        raise ValueError(f"failed to recover the public key: {exc}") from None
    return keccak256(public.format(compressed=False)[1:])[-20:]
