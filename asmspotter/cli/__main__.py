"""``python -m asmspotter.cli``: the command line, as the ``asmspotter`` script runs it."""

from asmspotter.cli import app

app()
