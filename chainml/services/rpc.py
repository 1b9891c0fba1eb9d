"""A minimal JSON-RPC probe for readiness and status checks, without importing web3."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from chainml.errors import ServiceError


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """Call one JSON-RPC method; raises ServiceError naming the URL on any failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ServiceError(f"no JSON-RPC answer from {url} for {method}: {exc}") from exc
    if "error" in reply:
        raise ServiceError(f"{url} answered {method} with an error: {reply['error']}")
    return reply.get("result")


def rpc_ready(url: str) -> bool:
    try:
        rpc_call(url, "eth_chainId", timeout=1.0)
    except ServiceError:
        return False
    return True
