"""``python -m backfill``: the command-line interface (see :mod:`backfill.cli.main`)."""

from backfill.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
