"""The deployments file: which contracts live at which addresses on which chain.

The deploy script writes it; the CLI, the swarm and ``chainml inspect`` read it, so a user can
point chainml at any RPC URL plus this file. Writes are atomic so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from chainml.errors import ConfigError

DEPLOYMENTS_FILENAME = "deployments.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Deployments:
    """Addresses of the deployed chainml contracts on one chain."""

    chain_id: int
    contracts: dict[str, str]
    deployer: str = ""
    block_number: int = 0
    extra: dict[str, object] = field(default_factory=dict)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError:
            known = ", ".join(sorted(self.contracts)) or "none"
            raise ConfigError(f"no deployed contract named {name!r} (known: {known})") from None


def deployments_path(data_dir: Path) -> Path:
    return data_dir / DEPLOYMENTS_FILENAME


def save_deployments(path: Path, deployments: Deployments) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, **asdict(deployments)}, indent=2) + "\n")
    os.replace(tmp, path)


def load_deployments(path: Path) -> Deployments | None:
    """The deployments at ``path``, or None if nothing was deployed yet."""
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text())
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported format {raw.get('format')!r}")
        return Deployments(
            chain_id=int(raw["chain_id"]),
            contracts={str(k): str(v) for k, v in raw["contracts"].items()},
            deployer=str(raw.get("deployer", "")),
            block_number=int(raw.get("block_number", 0)),
            extra=dict(raw.get("extra", {})),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"deployments file {path} is corrupt ({exc}); redeploy with `make deploy` "
            "or restore the file"
        ) from exc
