"""The ``podactors`` command: pods on the terminal, and a session store's maintenance."""

from podactors.cli.main import main

__all__ = ["main"]
