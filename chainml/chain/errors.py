"""Chain-layer errors, with reverts decoded against the contracts' ABIs.

A revert surfaces as ``ContractRevert`` whose ``name`` is the Solidity custom error and whose
``args`` maps its parameter names to values, so users read ``LedgerRoundClosed(round=3, ...)``
instead of a hex blob.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import requests
from eth_abi import decode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3.exceptions import ContractCustomError, ContractLogicError, Web3Exception, Web3RPCError

from chainml.errors import ChainError, ChainMLError

_ERROR_STRING = bytes.fromhex("08c379a0")
_PANIC = bytes.fromhex("4e487b71")


class ContractRevert(ChainError):
    """A call or transaction reverted; ``name`` and ``args`` describe the custom error."""

    def __init__(self, action: str, name: str, args: dict[str, Any], data: bytes) -> None:
        self.action = action
        self.name = name
        self.args_map = args
        self.data = data
        shown = ", ".join(f"{k}={_show(v)}" for k, v in args.items())
        super().__init__(f"{action} reverted with {name}({shown})")


class TransactionError(ChainError):
    """A transaction could not be sent or mined for a reason other than a revert."""


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)


def _canonical_type(param: dict[str, Any]) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){param['type'][5:]}"
    return param["type"]


class RevertDecoder:
    """Maps revert data to custom-error names using every ``error`` entry of the given ABIs."""

    def __init__(self, abis: Iterable[list[dict[str, Any]]]) -> None:
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        for abi in abis:
            for item in abi:
                if item.get("type") != "error":
                    continue
                types = [_canonical_type(p) for p in item["inputs"]]
                signature = f"{item['name']}({','.join(types)})"
                selector = function_signature_to_4byte_selector(signature)
                names = [p["name"] or f"arg{i}" for i, p in enumerate(item["inputs"])]
                self._errors[selector] = (item["name"], types, names)

    def decode(self, data: bytes) -> tuple[str, dict[str, Any]]:
        selector, body = data[:4], data[4:]
        if selector == _ERROR_STRING:
            return "Error", {"message": decode(["string"], body)[0]}
        if selector == _PANIC:
            return "Panic", {"code": hex(decode(["uint256"], body)[0])}
        known = self._errors.get(selector)
        if known is None:
            return ("Revert" if not data else "UnknownError"), {"data": data}
        name, types, names = known
        try:
            values = decode(types, body)
        except Exception:  # malformed payload: still report the name
            return name, {"data": body}
        values = [
            to_checksum_address(v) if t == "address" else v
            for t, v in zip(types, values, strict=True)
        ]
        return name, dict(zip(names, values, strict=True))

    def error(self, action: str, data: bytes) -> ContractRevert:
        name, args = self.decode(data)
        return ContractRevert(action, name, args, data)


def revert_data(exc: BaseException) -> bytes | None:
    """The raw revert payload carried by a web3 exception, if any."""
    data: Any = getattr(exc, "data", None)
    if isinstance(exc, Web3RPCError) and data is None:
        rpc = getattr(exc, "rpc_response", None) or {}
        data = (rpc.get("error") or {}).get("data")
    if isinstance(data, dict):
        data = data.get("data")
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return None
    if isinstance(data, bytes):
        return data
    if isinstance(exc, ContractLogicError | ContractCustomError) and data is None:
        return b""
    return None


@contextlib.contextmanager
def chain_errors(rpc_url: str) -> Iterator[None]:
    """Turn a chain that stops answering into one clear line (not a requests traceback)."""
    try:
        yield
    except ChainMLError:
        raise
    except (requests.RequestException, OSError) as exc:
        raise ChainError(
            f"lost the connection to the chain at {rpc_url} ({type(exc).__name__}); restart it "
            "(`chainml chain up` for the local chain) and rerun the same command to resume: "
            "state is read back from the chain"
        ) from exc
    except Web3Exception as exc:
        raise ChainError(f"the chain at {rpc_url} refused a call: {exc}") from exc
