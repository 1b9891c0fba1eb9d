"""One exception hierarchy for the whole package.

The CLI turns any ``ChainMLError`` into a one-line message on stderr and exit code 1, so every
message should name the cause and what to do about it. Third-party failures are wrapped with
``raise SomeError(...) from exc`` so the original traceback survives under ``--verbose``.
"""


class ChainMLError(Exception):
    """Base class for every error chainml raises on purpose."""


class ConfigError(ChainMLError):
    """Bad user input: an option, a config file or an environment variable."""


class ToolchainError(ChainMLError):
    """A required external program (anvil, node, solc-js, ...) is missing or broken."""


class ServiceError(ChainMLError):
    """A local service (chain or IPFS node) could not be started, reached or stopped."""


class ChainError(ChainMLError):
    """A contract call, a transaction or a deployment failed."""


class StorageError(ChainMLError):
    """Content could not be stored, fetched or verified."""


class IntegrityError(StorageError):
    """Content does not match its CID, or a payload is malformed (bad shape, dtype, NaN, ...)."""


class MetaLearningError(ChainMLError):
    """Invalid meta-learning configuration or data."""


class BudgetError(ChainMLError):
    """A simulated device cannot do what was asked within its hardware budget."""
