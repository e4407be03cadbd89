"""``python -m podactors.cli``: the ``podactors`` command."""

from podactors.cli.main import main

main()
