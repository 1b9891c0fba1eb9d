"""Size limits shared by both backends and the tensor codec.

One limit, checked before any bytes move: a put checks the payload, a get checks the size the
file's root announces (and the reader re-checks the real size), so a hostile or mistaken CID
can never make a node allocate more than the limit.
"""

from __future__ import annotations

import os

from chainml.errors import ConfigError, StorageError

DEFAULT_MAX_OBJECT_SIZE = 256 * 1024 * 1024
"""256 MiB: far above any meta-model chainml ships, low enough to stop runaway allocations."""
MAX_OBJECT_SIZE_ENV = "CHAINML_MAX_OBJECT_SIZE"


class ObjectTooLargeError(StorageError):
    """An object is larger than the configured maximum object size."""


def default_max_object_size() -> int:
    """``$CHAINML_MAX_OBJECT_SIZE`` (bytes) if set, else ``DEFAULT_MAX_OBJECT_SIZE``."""
    text = os.environ.get(MAX_OBJECT_SIZE_ENV)
    if not text:
        return DEFAULT_MAX_OBJECT_SIZE
    return parse_max_object_size(text, source=MAX_OBJECT_SIZE_ENV)


def parse_max_object_size(value: int | str | None, *, source: str = "max_object_size") -> int:
    """Validate a limit given as an int or a decimal string; ``None`` means the default."""
    if value is None:
        return default_max_object_size()
    try:
        limit = int(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source} must be a whole number of bytes, got {value!r}") from exc
    if limit <= 0:
        raise ConfigError(f"{source} must be positive, got {limit}")
    return limit


def check_object_size(size: int, limit: int, what: str = "object") -> None:
    """Raise ``ObjectTooLargeError`` if ``size`` exceeds ``limit``."""
    if size > limit:
        raise ObjectTooLargeError(
            f"{what} is {size} bytes, over the maximum object size of {limit} bytes "
            f"(raise it with ${MAX_OBJECT_SIZE_ENV} or max_object_size=)"
        )
