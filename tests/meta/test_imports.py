"""The engine stays below the chain/storage layers: importing it pulls in none of them."""

from __future__ import annotations

import json
import subprocess
import sys


def test_meta_imports_no_chain_or_ipfs_code() -> None:
    code = (
        "import json, sys, chainml.meta; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.split('.')[0] in {'web3', 'brownie', 'ipfshttpclient', 'eth_account', 'solcx'})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
