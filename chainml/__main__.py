"""``python -m chainml`` is the same as the ``chainml`` command."""

from chainml.cli.main import run

run()
