"""Where an actor's private key comes from: a key file or an environment variable, never a
command-line argument (``ps`` shows those to every user of the machine)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from chainml.errors import ConfigError

KEY_ENV = "CHAINML_KEY"
"""A 0x-hex private key in the environment (for containers and secret managers)."""
KEY_FILE_ENV = "CHAINML_KEY_FILE"


def parse_key(text: str, where: str) -> LocalAccount:
    """A private key from hex text (with or without 0x, surrounding whitespace ignored)."""
    raw = text.strip().removeprefix("0x").removeprefix("0X")
    try:
        key = bytes.fromhex(raw)
        if len(key) != 32:
            raise ValueError(f"{len(key)} bytes, not 32")
        return Account.from_key(key)
    except ValueError as exc:
        raise ConfigError(f"{where} does not hold a private key (64 hex digits): {exc}") from None


def load_key(key_file: Path | None, env: dict[str, str] | None = None) -> LocalAccount:
    """The actor's key from ``key_file`` (or ``$CHAINML_KEY_FILE``), else ``$CHAINML_KEY``.

    A key file that others can read is refused, as ssh refuses such a private key.
    """
    env = dict(os.environ) if env is None else env
    path = key_file or (Path(env[KEY_FILE_ENV]) if env.get(KEY_FILE_ENV) else None)
    if path is not None:
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read the key file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                f"the key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); "
                f"run `chmod 600 {path}`"
            )
        return parse_key(text, f"the key file {path}")
    if env.get(KEY_ENV):
        return parse_key(env[KEY_ENV], f"${KEY_ENV}")
    raise ConfigError(
        f"no key: pass --key-file PATH (mode 600), or set {KEY_FILE_ENV} or {KEY_ENV}"
    )


def write_key_file(path: Path, account: LocalAccount) -> Path:
    """Write ``account``'s key to ``path`` with mode 600 (for set-up scripts and tests)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("0x" + bytes(account.key).hex() + "\n")
    return path
