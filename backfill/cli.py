"""``python -m backfill``: the command-line interface, on the same backend as the console (SPEC 4.7).

Each command is one ``_add_<name>`` function that declares its parser and its handler; :data:`COMMANDS`
lists them. Handlers check every input before they write anything (most before they even open the
warehouse), so bad input writes nothing.

Exit codes:

- 0: done (``gaps`` exits 0 even when there are gaps: reporting them is its job);
- 1: the work did not finish: dates failed or were blocked (backfills), or an unexpected error,
  reported as one ``error:`` line (``--debug`` shows the traceback);
- 2: bad input, with a one-line ``error:`` reason on stderr and nothing written.

Heavy modules (pandas, DuckDB, sqlglot, openpyxl, the BigQuery client) are imported inside the
handlers, and openpyxl only for an .xlsx report, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from backfill import __version__
from backfill.config import DEFAULT_WAREHOUSE, Settings, load_settings
from backfill.errors import BadInput
from backfill.validate import check_range, check_stages, parse_date

if TYPE_CHECKING:
    from backfill.warehouse import Warehouse

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2

MAX_DEMO_SEASONS = 40
"""Most seasons ``demo`` builds (the incident season and earlier ones)."""

Today = Callable[[], dt.date]


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class _Context:
    """What a handler needs besides its arguments: settings, output streams, the clock."""

    settings: Settings
    out: TextIO
    err: TextIO
    today: Today


# -- shared pieces --------------------------------------------------------------------------------


def _common_options() -> argparse.ArgumentParser:
    """Options every command also accepts after its name (``coverage --warehouse X``)."""
    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a subcommand's option only counts when given, so it never hides the global one.
    common.add_argument(
        "--warehouse",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="warehouse to use: a DuckDB file path or bigquery://PROJECT "
        "(default: BACKFILL_WAREHOUSE, the config file, or data/warehouse.duckdb)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an unexpected error",
    )
    return common


def _add_range_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start", metavar="D", help="first game date, YYYY-MM-DD (default: the first in the data)"
    )
    parser.add_argument(
        "--end", metavar="D", help="last game date, YYYY-MM-DD (default: the last in the data)"
    )
    parser.add_argument(
        "--stage",
        metavar="STAGE",
        help="only this stage: mlfs or predictions (default: both)",
    )


def _check_not_future(day: dt.date, what: str, today: Today) -> None:
    if day > today():
        raise BadInput(f"{what} {day} is in the future")


def _parse_range(args: argparse.Namespace, ctx: _Context) -> tuple[dt.date | None, dt.date | None]:
    """The dates given, checked as far as possible without the warehouse.

    A range with both ends given must fit ``max_range_days``; an open end stands for the edge of the
    data, like the default whole-data range, which is not capped.
    """
    start = parse_date(args.start, "--start") if args.start else None
    end = parse_date(args.end, "--end") if args.end else None
    for day, what in ((start, "start date"), (end, "end date")):
        if day is not None:
            _check_not_future(day, what, ctx.today)
    if start is not None and end is not None:
        check_range(start, end, max_days=ctx.settings.max_range_days, today=ctx.today)
    return start, end


def _resolve_range(
    warehouse: Warehouse, start: dt.date | None, end: dt.date | None, today: Today
) -> tuple[dt.date, dt.date]:
    """Fill open ends of a range from the data's first and last game dates."""
    if start is None or end is None:
        from backfill.coverage import data_bounds

        bounds = data_bounds(warehouse)
        if bounds is None:
            raise BadInput(
                f"{warehouse.describe()} has no player_game_summary rows "
                "(build the demo: python -m backfill demo, or give --start and --end)"
            )
        if start is not None and start > bounds[1]:
            raise BadInput(f"--start {start} is after the last game date in the warehouse ({bounds[1]})")
        if end is not None and end < bounds[0]:
            raise BadInput(f"--end {end} is before the first game date in the warehouse ({bounds[0]})")
        start = start or bounds[0]
        end = end or bounds[1]
    return check_range(start, end, today=today)


def _open_warehouse(ctx: _Context) -> Warehouse:
    """The configured warehouse; a DuckDB file must exist (a typo must not create an empty one)."""
    from backfill.warehouse import connect, parse_url

    kind, location = parse_url(ctx.settings.warehouse)
    if kind == "duckdb" and location != ":memory:" and not Path(location).is_file():
        if ctx.settings.warehouse == DEFAULT_WAREHOUSE and not Path(location).exists():
            # First start (SPEC 4.8): the default warehouse is created with demo data.
            from backfill.demo import ensure_demo

            print(f"note: building the demo warehouse at {location} (first start)", file=ctx.err)
            ensure_demo(ctx.settings)
        else:
            raise BadInput(
                f"warehouse file {location!r} does not exist (build it: python -m backfill demo --warehouse {location})"
            )
    return connect(ctx.settings)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _text_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """An aligned plain-text table; ``columns`` are (header, key); numbers align right."""

    def shown(value: Any) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return "-"
        if isinstance(value, float):
            return f"{value:.1f}"
        return str(value)

    cells = [[shown(row[key]) for _, key in columns] for row in rows]
    # Numbers and counts ("69/82") align right, words left.
    numeric = [all(re.fullmatch(r"-|[\d/.,]*", text) for text in column) for column in zip(*cells)] or [
        False
    ] * len(columns)
    widths = [max([len(header), *(len(line[i]) for line in cells)]) for i, (header, _) in enumerate(columns)]

    def line(values: list[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric)
        ]
        return "  ".join(padded).rstrip()

    return "\n".join([line([header for header, _ in columns]), *(line(values) for values in cells)])


# -- demo -----------------------------------------------------------------------------------------


def _add_demo(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[common],
        help="build the demo warehouse (a DuckDB file)",
        description="Build the deterministic demo warehouse: 30 teams, about 450 players, real-shaped "
        "season calendars, in the state of the team's December 2021 incident (missing and blocked "
        "prediction dates, stale rows, early-season bootstrap dates). An existing file at the path "
        "is replaced whole.",
    )
    parser.add_argument(
        "--seasons",
        type=int,
        default=1,
        metavar="N",
        help="seasons to build, ending with 2021-22 (default: 1)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=7,
        metavar="N",
        help="random seed; the same seed gives the same data (default: 7)",
    )
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace, ctx: _Context) -> int:
    from backfill.warehouse import parse_url

    if not 1 <= args.seasons <= MAX_DEMO_SEASONS:
        raise BadInput(f"--seasons must be between 1 and {MAX_DEMO_SEASONS}, got {args.seasons}")
    if args.seed < 0:
        raise BadInput(f"--seed must be 0 or more, got {args.seed}")
    kind, location = parse_url(ctx.settings.warehouse)
    if kind != "duckdb":
        raise BadInput(
            f"building the demo in {kind} is not yet supported; give --warehouse PATH for a DuckDB file"
        )
    if location == ":memory:":
        raise BadInput("the demo needs a DuckDB file path, not :memory:")
    if Path(location).is_dir():
        raise BadInput(f"warehouse path {location!r} is a directory")

    from backfill.demo import build_demo_file
    from backfill.seasons import season_label
    from backfill.warehouse import connect

    began = time.perf_counter()
    summary = build_demo_file(location, ctx.settings, seasons=args.seasons, seed=args.seed)
    took = time.perf_counter() - began
    warehouse = connect(ctx.settings)
    try:
        counts = warehouse.query(
            "SELECT (SELECT COUNT(*) FROM {mlfs}) AS mlfs_rows, (SELECT COUNT(*) FROM {pred}) AS prediction_rows"
        ).iloc[0]
    finally:
        warehouse.close()
    seasons = ", ".join(season_label(season) for season in summary.seasons)
    print(
        f"Built the demo warehouse at {location} in {took:.1f} s (seed {args.seed})\n"
        f"  seasons:  {seasons}\n"
        f"  games:    {summary.games:,}\n"
        f"  players:  {summary.players:,}\n"
        f"  rows:     {summary.player_game_rows:,} player-games, {int(counts['mlfs_rows']):,} MLFS, "
        f"{int(counts['prediction_rows']):,} predictions\n"
        f"  dates:    {summary.first_date} to {summary.last_date}",
        file=ctx.out,
    )
    return EXIT_OK


# -- coverage -------------------------------------------------------------------------------------

_COVERAGE_TEXT_COLUMNS = [
    ("period", "period"),
    ("stage", "stage"),
    ("status", "status"),
    ("players", "players"),
    ("player %", "player_coverage_pct"),
    ("player-games", "player_games"),
    ("player-game %", "player_game_coverage_pct"),
    ("expected %", "expected_coverage_pct"),
    ("note", "note"),
]


def _add_coverage(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "coverage",
        parents=[common],
        help="coverage of each stage by month or by date",
        description="Coverage of MLFS and predictions over player_game_summary, by month (the team's "
        "player coverage beside player-game coverage) or by date, with each period's status. "
        "Without --start/--end, the whole data.",
    )
    _add_range_options(parser)
    parser.add_argument(
        "--by",
        choices=("month", "date"),
        default="month",
        help="one row per month or per date (default: month)",
    )
    parser.add_argument(
        "--format", choices=("table", "csv", "json"), default="table", help="output format (default: table)"
    )
    parser.set_defaults(handler=_run_coverage)


def _run_coverage(args: argparse.Namespace, ctx: _Context) -> int:
    stages = check_stages(args.stage) if args.stage is not None else None
    start, end = _parse_range(args, ctx)
    warehouse = _open_warehouse(ctx)
    try:
        from backfill.report import coverage_table, records

        start, end = _resolve_range(warehouse, start, end, ctx.today)
        table = coverage_table(warehouse, ctx.settings, start, end, by=args.by, stage=stages)
    finally:
        warehouse.close()
    if args.format == "json":
        import json

        print(json.dumps(records(table), indent=2), file=ctx.out)
    elif args.format == "csv":
        ctx.out.write(table.to_csv(index=False, lineterminator="\n"))
    else:
        rows = records(table)
        for row in rows:
            row["players"] = f"{row['players_covered']}/{row['players_total']}"
            row["player_games"] = f"{row['player_games_covered']}/{row['player_games_total']}"
        print(f"Coverage from {start} to {end}, by {args.by}", file=ctx.out)
        print(_text_table(rows, _COVERAGE_TEXT_COLUMNS), file=ctx.out)
    return EXIT_OK


# -- gaps -----------------------------------------------------------------------------------------

_GAP_TEXT_COLUMNS = [
    ("date", "game_date"),
    ("stage", "stage"),
    ("status", "status"),
    ("covered", "covered"),
    ("player-game %", "player_game_coverage_pct"),
    ("expected %", "expected_coverage_pct"),
    ("MLFS %", "upstream_coverage_pct"),
    ("reason", "reason"),
]


def _add_gaps(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "gaps",
        parents=[common],
        help="the gap report: gap dates with reasons, coverage by month, stale rows",
        description="The gap report: every date below the complete mark with its status and reason, "
        "coverage by month and stale rows. Without --output, prints the gap dates; with --output FILE, "
        "writes the whole report in the format FILE's suffix names (.csv: the gap table; .json, .md, "
        ".xlsx: the whole report). Exits 0 even when there are gaps.",
    )
    _add_range_options(parser)
    parser.add_argument(
        "--output", metavar="FILE", help="write the report to FILE (.csv, .json, .md or .xlsx)"
    )
    parser.set_defaults(handler=_run_gaps)


def _run_gaps(args: argparse.Namespace, ctx: _Context) -> int:
    stages = check_stages(args.stage) if args.stage is not None else None
    start, end = _parse_range(args, ctx)
    if args.output:
        from backfill.report import check_report_path

        check_report_path(args.output)
    warehouse = _open_warehouse(ctx)
    try:
        from backfill.report import gap_report, records, write_report

        start, end = _resolve_range(warehouse, start, end, ctx.today)
        report = gap_report(warehouse, ctx.settings, start, end, stage=stages)
    finally:
        warehouse.close()
    if args.output:
        path = write_report(report, args.output)
        print(
            f"Wrote the gap report for {start} to {end} ({_plural(len(report.real_gaps), 'gap')}, "
            f"{_plural(len(report.bootstrap_dates), 'bootstrap date')}) to {path}",
            file=ctx.out,
        )
        return EXIT_OK
    gaps = records(report.real_gaps)
    dates = len({row["game_date"] for row in gaps})
    print(
        f"Gaps from {start} to {end}: {_plural(len(gaps), 'gap')} on {_plural(dates, 'date')}", file=ctx.out
    )
    if gaps:
        for row in gaps:
            row["covered"] = f"{row['players_covered']}/{row['players_total']}"
        print(_text_table(gaps, _GAP_TEXT_COLUMNS), file=ctx.out)
    bootstrap = report.bootstrap_dates
    if len(bootstrap):
        print(
            f"{len(bootstrap)} bootstrap dates (expected) from {bootstrap['game_date'].min()} to "
            f"{bootstrap['game_date'].max()} are not listed; --output FILE includes them.",
            file=ctx.out,
        )
    stale_rows = int(report.stale["rows"].sum())
    if stale_rows:
        print(f"{stale_rows} stale rows on {report.stale['game_date'].nunique()} dates.", file=ctx.out)
    return EXIT_OK


# -- the parser and the entry point ---------------------------------------------------------------

COMMANDS: tuple[Callable[[Any, argparse.ArgumentParser], None], ...] = (_add_demo, _add_coverage, _add_gaps)
"""One function per command: each adds its subparser and sets its ``handler``."""


def build_parser() -> argparse.ArgumentParser:
    """The ``python -m backfill`` parser with every command of :data:`COMMANDS`."""
    parser = _Parser(
        prog="python -m backfill",
        description="Coverage, gaps and backfills of the NBA player-prop prediction pipeline "
        "(player_game_summary -> ml_feature_store -> player_prop_predictions).",
        epilog="Exit codes: 0 done; 1 dates failed or blocked, or an unexpected error; "
        "2 bad input (one-line reason, nothing written). Settings come from backfill.toml "
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
        "--debug", action="store_true", default=False, help="show the traceback of an unexpected error"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    common = _common_options()
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
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # --help, --version and usage errors
        return exit_.code if isinstance(exit_.code, int) else EXIT_BAD_INPUT
    try:
        settings = load_settings(environ)
        if args.warehouse:
            settings = settings.replace(warehouse=args.warehouse)
        from backfill.warehouse import parse_url

        parse_url(settings.warehouse)
        return args.handler(args, _Context(settings, out, err, today))
    except BadInput as exc:
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
