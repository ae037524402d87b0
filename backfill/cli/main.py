"""``python -m backfill``: the command-line interface, on the same backend as the console (SPEC 4.7).

Each command is one ``_add_<name>`` function that declares its parser and its handler; :data:`COMMANDS`
lists them. Handlers check every input before they write anything (most before they even open the
warehouse), so bad input writes nothing.

Exit codes:

- 0: done (``gaps`` exits 0 even when there are gaps: reporting them is its job);
- 1: the work did not finish: dates failed or were blocked (backfills), or an unexpected error,
  reported as one ``error:`` line (``--debug`` shows the traceback);
- 2: bad input, with a one-line ``error:`` reason on stderr and nothing written;
- 3 (``check`` only): the check could not run (the warehouse or ledger could not be read).

Heavy modules (pandas, DuckDB, sqlglot, openpyxl, the BigQuery client) are imported inside the
handlers, and openpyxl only for an .xlsx report, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import sys
import traceback
from collections.abc import Callable
from typing import Any

from backfill import __version__
from backfill.cli import backfills, console, doctor, reporting, smoke, watch
from backfill.cli.common import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, Context, Parser, Today, common_options
from backfill.config import load_settings
from backfill.errors import BackfillError

# -- the parser and the entry point ---------------------------------------------------------------

COMMANDS: tuple[Callable[[Any, argparse.ArgumentParser], None], ...] = (
    reporting.add_demo,
    reporting.add_coverage,
    reporting.add_gaps,
    backfills.add_run,
    backfills.add_runs,
    backfills.add_stale,
    backfills.add_worker,
    doctor.add_doctor,
    smoke.add_smoke,
    watch.add_check,
    console.add_console,
)
"""One function per command: each adds its subparser and sets its ``handler``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m backfill`` parser with every command of :data:`COMMANDS`."""
    parser = Parser(
        prog="python -m backfill",
        description="Coverage, gaps and backfills of the NBA player-prop prediction pipeline "
        "(player_game_summary -> ml_feature_store -> player_prop_predictions).",
        epilog="Exit codes: 0 done; 1 dates failed or blocked, or an unexpected error; "
        "2 bad input (one-line reason, nothing written); 3 (check) could not check. Settings come from backfill.toml "
        "(or BACKFILL_CONFIG) and BACKFILL_* variables.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--warehouse",
        metavar="URL",
        default=None,
        help="warehouse to use: a DuckDB file path or bigquery://PROJECT "
        "(default: BACKFILL_WAREHOUSE, the config file, or data/warehouse.duckdb)",
    )
    parser.add_argument(
        "--pipeline",
        metavar="PATH",
        default=None,
        help="pipeline file (default: BACKFILL_PIPELINE, ./pipeline.toml, or the built-in demo pipeline)",
    )
    parser.add_argument(
        "--debug", action="store_true", default=False, help="show the traceback of an unexpected error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=Parser)
    common = common_options()
    for add_command in COMMANDS:
        add_command(subparsers, common)
    return parser


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def main(
    argv: list[str] | None = None,
    *,
    environ: dict[str, str] | None = None,
    today: Today = dt.date.today,
) -> int:
    """Run one command; returns the exit code (0 done, 1 failed, 2 bad input)."""
    out, err = sys.stdout, sys.stderr
    from backfill.writes import writes_so_far

    written = writes_so_far()
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        settings = load_settings(environ, pipeline=args.pipeline)
        if args.warehouse:
            settings = settings.replace(warehouse=args.warehouse)
        from backfill.warehouse import parse_url

        parse_url(settings.warehouse)
        return args.handler(args, Context(settings, out, err, today))
    except BackfillError as exc:  # bad input, not allowed, no such run: nothing was written...
        if writes_so_far() != written:
            # ...unless something was: then it is a failure (1), and the records say what was written.
            print(f"error: {_one_line(exc)} (after writing to the ledger: see runs and checks)", file=err)
            return EXIT_FAILED
        print(f"error: {_one_line(exc)}", file=err)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("error: interrupted", file=err)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Unix tools do, and keep Python's
        # final flush of stdout from failing again.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return EXIT_OK
    except Exception as exc:
        if args.debug:
            traceback.print_exc(file=err)
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (run with --debug for the traceback)", file=err)
        return EXIT_FAILED
