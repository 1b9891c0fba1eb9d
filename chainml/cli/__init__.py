"""The ``chainml`` command line: one typer app with a sub-app per concern."""
