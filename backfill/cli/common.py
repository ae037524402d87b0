"""Pieces every command shares: the one-line-error parser, the context, ranges, the warehouse, tables."""

from __future__ import annotations

import argparse
import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from backfill.config import DEFAULT_WAREHOUSE, Settings
from backfill.errors import BadInput
from backfill.validate import check_range, parse_date

if TYPE_CHECKING:
    from backfill.warehouse import Warehouse

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_COULD_NOT_CHECK = 3
"""``check`` only: the check did not happen (the warehouse or the ledger could not be read), apart
from 1, problems found; for cron, which must tell a silent morning from a broken check."""

Today = Callable[[], dt.date]


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Context:
    """What a handler needs besides its arguments: settings, output streams, the clock."""

    settings: Settings
    out: TextIO
    err: TextIO
    today: Today


# -- shared pieces --------------------------------------------------------------------------------


def common_options() -> argparse.ArgumentParser:
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
        "--pipeline",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="pipeline file (default: BACKFILL_PIPELINE, ./pipeline.toml, or the built-in demo pipeline)",
    )
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of an unexpected error",
    )
    return common


def add_range_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--start", metavar="D", help="first game date, YYYY-MM-DD (default: the first in the data)"
    )
    parser.add_argument(
        "--end", metavar="D", help="last game date, YYYY-MM-DD (default: the last in the data)"
    )
    parser.add_argument(
        "--stage",
        metavar="STAGE",
        help="only this stage of the pipeline, e.g. mlfs or predictions (default: all)",
    )


def check_not_future(day: dt.date, what: str, today: Today) -> None:
    if day > today():
        raise BadInput(f"{what} {day} is in the future")


def parse_range(args: argparse.Namespace, ctx: Context) -> tuple[dt.date | None, dt.date | None]:
    """The dates given, checked as far as possible without the warehouse.

    A range with both ends given must fit ``max_range_days``; an open end stands for the edge of the
    data, like the default whole-data range, which is not capped.
    """
    start = parse_date(args.start, "--start") if args.start else None
    end = parse_date(args.end, "--end") if args.end else None
    for day, what in ((start, "start date"), (end, "end date")):
        if day is not None:
            check_not_future(day, what, ctx.today)
    if start is not None and end is not None:
        check_range(start, end, max_days=ctx.settings.max_range_days, today=ctx.today)
    return start, end


def resolve_range(
    warehouse: Warehouse,
    start: dt.date | None,
    end: dt.date | None,
    today: Today,
    bounds: Callable[[], tuple[dt.date, dt.date] | None] | None = None,
) -> tuple[dt.date, dt.date]:
    """Fill open ends of a range from the data's first and last game dates (read by ``bounds``, or
    asked of the warehouse)."""
    if start is None or end is None:
        from backfill.coverage import data_bounds

        found = bounds() if bounds is not None else data_bounds(warehouse)
        if found is None:
            raise BadInput(
                f"{warehouse.describe()} has no player_game_summary rows "
                "(build the demo: python -m backfill demo, or give --start and --end)"
            )
        if start is not None and start > found[1]:
            raise BadInput(f"--start {start} is after the last game date in the warehouse ({found[1]})")
        if end is not None and end < found[0]:
            raise BadInput(f"--end {end} is before the first game date in the warehouse ({found[0]})")
        start = start or found[0]
        end = end or found[1]
    return check_range(start, end, today=today)


def open_warehouse(ctx: Context, check_tables: bool = True) -> Warehouse:
    """The configured warehouse; a DuckDB file must exist (a typo must not create an empty one), and
    every stage's table (unless ``check_tables`` is False: a run checks them once it holds its dates,
    so that a run refused for its dates never waits on the warehouse)."""
    from backfill.access import local_user
    from backfill.cost_labels import job_labels
    from backfill.warehouse import adapter_class, connect, parse_url

    kind, location = parse_url(ctx.settings.warehouse)
    file = adapter_class(kind).local_file(location)
    if file is not None and not Path(file).is_file():
        if ctx.settings.warehouse == DEFAULT_WAREHOUSE and not Path(file).exists():
            # First start (SPEC 4.8): the default warehouse is created with demo data.
            from backfill.demo import ensure_demo

            print(f"note: building the demo warehouse at {location} (first start)", file=ctx.err)
            ensure_demo(ctx.settings)
        else:
            raise BadInput(
                f"warehouse file {location!r} does not exist (build it: python -m backfill demo --warehouse {location})"
            )
    warehouse = connect(ctx.settings)
    # A CLI read unless the command says otherwise (a run labels its own jobs "run").
    warehouse.base_labels = job_labels("check", local_user())
    if check_tables:
        warehouse.check_stage_tables()
    return warehouse


def print_estimate(ctx: Context, compute: Callable[[], Any]) -> None:
    """The warehouse's cost estimate of the work about to run, as a note on stderr (none on DuckDB)."""
    from backfill.cost import estimate_note

    note = estimate_note(compute)
    if note is not None:
        print(f"note: {note.text}", file=ctx.err)


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def text_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
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
