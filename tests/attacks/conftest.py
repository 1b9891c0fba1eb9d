"""Attack fixtures: the swarm package's fresh-chain environments."""

from tests.swarm.conftest import make_env  # noqa: F401 - re-exported fixture
