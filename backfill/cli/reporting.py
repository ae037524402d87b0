"""Commands that read: ``demo`` (builds the demo warehouse), ``coverage`` and ``gaps``."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from backfill.cli.common import (
    EXIT_OK,
    Context,
    add_range_options,
    open_warehouse,
    parse_range,
    plural,
    print_estimate,
    resolve_range,
    text_table,
)
from backfill.errors import BadInput

MAX_DEMO_SEASONS = 40
"""Most seasons ``demo`` builds (the incident season and earlier ones)."""

# -- demo -----------------------------------------------------------------------------------------


def add_demo(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=[common],
        help="build the demo warehouse (a DuckDB file, or BigQuery datasets)",
        description="Build the deterministic demo warehouse: 30 teams, about 450 players, real-shaped "
        "season calendars, in the state of the team's December 2021 incident (missing and blocked "
        "prediction dates, stale rows, early-season bootstrap dates). An existing DuckDB file at the "
        "path is replaced whole. On BigQuery (--warehouse bigquery://PROJECT) the datasets and "
        "tables are created where missing; tables the demo made before are rebuilt only with "
        "--replace, and tables it did not make are never dropped.",
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
    parser.add_argument(
        "--replace",
        action="store_true",
        help="BigQuery: drop and rebuild the demo's tables when an earlier demo made them "
        "(a DuckDB file is always replaced whole)",
    )
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.warehouse import adapter_class, parse_url

    if not 1 <= args.seasons <= MAX_DEMO_SEASONS:
        raise BadInput(f"--seasons must be between 1 and {MAX_DEMO_SEASONS}, got {args.seasons}")
    if args.seed < 0:
        raise BadInput(f"--seed must be 0 or more, got {args.seed}")
    kind, location = parse_url(ctx.settings.warehouse)
    adapter = adapter_class(kind)
    # A warehouse in a local file (DuckDB) is built beside its path and moved into place whole; any
    # other (BigQuery) is built in its own datasets, guarded by build_demo_in_place.
    in_a_file = adapter.IN_LOCAL_FILES
    if in_a_file and adapter.local_file(location) is None:
        raise BadInput(f"the demo needs a file path, not {location}")
    if in_a_file and Path(location).is_dir():
        raise BadInput(f"warehouse path {location!r} is a directory")

    from backfill.demo import build_demo_file, build_demo_in_place
    from backfill.launch import refuse_if_active
    from backfill.seasons import season_label
    from backfill.warehouse import connect

    refuse_if_active(ctx.settings, adapter.url_of(location), "rebuilding the demo")

    began = time.perf_counter()
    if in_a_file:
        summary = build_demo_file(location, ctx.settings, seasons=args.seasons, seed=args.seed)
    warehouse = connect(ctx.settings)
    try:
        if not in_a_file:
            summary = build_demo_in_place(
                warehouse, ctx.settings, seasons=args.seasons, seed=args.seed, replace=args.replace
            )
        took = time.perf_counter() - began
        where = location if in_a_file else warehouse.describe()
        counts = warehouse.query(
            "SELECT (SELECT COUNT(*) FROM {mlfs}) AS mlfs_rows, (SELECT COUNT(*) FROM {pred}) AS prediction_rows"
        ).iloc[0]
    finally:
        warehouse.close()
    seasons = ", ".join(season_label(season) for season in summary.seasons)
    print(
        f"Built the demo warehouse at {where} in {took:.1f} s (seed {args.seed})\n"
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


def add_coverage(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "coverage",
        parents=[common],
        help="coverage of each stage by month or by date",
        description="Coverage of each stage of the pipeline over its reference data (built-in: MLFS and "
        "predictions over player_game_summary), by month (the team's "
        "player coverage beside player-game coverage) or by date, with each period's status. "
        "Without --start/--end, the whole data.",
    )
    add_range_options(parser)
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


def _run_coverage(args: argparse.Namespace, ctx: Context) -> int:
    stages = ctx.settings.pipeline.check_stages(args.stage) if args.stage is not None else None
    start, end = parse_range(args, ctx)
    warehouse = open_warehouse(ctx, check_tables=False)
    try:
        from backfill.coverage_snapshot import CoverageSnapshot
        from backfill.report import coverage_table, records

        # The kept snapshot answers the table check and the data's bounds too while nothing was written.
        snapshot = CoverageSnapshot.persisted(warehouse, ctx.settings)
        snapshot.check_stage_tables()
        start, end = resolve_range(warehouse, start, end, ctx.today, bounds=snapshot.bounds)
        if warehouse.SUPPORTS_DRY_RUN:  # the estimate's module is imported only where there is one
            from backfill.cost import coverage_estimate

            print_estimate(ctx, lambda: coverage_estimate(warehouse, ctx.settings, start, end, by=args.by))
        table = coverage_table(
            warehouse, ctx.settings, start, end, by=args.by, stage=stages, snapshot=snapshot
        )
        from backfill.coverage import has_games, no_data_note

        no_data = no_data_note(has_games(table), start, end, snapshot.bounds)
    finally:
        warehouse.close()
    if no_data is not None:
        # The note on stderr where stdout is data, so the empty JSON or CSV stays well formed.
        print(
            no_data if args.format == "table" else f"note: {no_data}",
            file=ctx.out if args.format == "table" else ctx.err,
        )
        table = table.iloc[0:0]
        if args.format == "table":
            return EXIT_OK
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
        print(text_table(rows, _COVERAGE_TEXT_COLUMNS), file=ctx.out)
    return EXIT_OK


# -- gaps -----------------------------------------------------------------------------------------

_GAP_TEXT_COLUMNS = [
    ("date", "game_date"),
    ("stage", "stage"),
    ("status", "status"),
    ("covered", "covered"),
    ("player-game %", "player_game_coverage_pct"),
    ("expected %", "expected_coverage_pct"),
    ("upstream %", "upstream_coverage_pct"),
    ("reason", "reason"),
]


def add_gaps(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "gaps",
        parents=[common],
        help="the gap report: gap dates with reasons, coverage by month, stale rows",
        description="The gap report: every date below the complete mark with its status and reason, "
        "coverage by month and stale rows. Without --output, prints the gap dates; with --output FILE, "
        "writes the whole report in the format FILE's suffix names (.csv: the gap table; .json, .md, "
        ".xlsx: the whole report, with the backfill runs of the period from the run ledger). "
        "Exits 0 even when there are gaps.",
    )
    add_range_options(parser)
    parser.add_argument(
        "--output", metavar="FILE", help="write the report to FILE (.csv, .json, .md or .xlsx)"
    )
    parser.set_defaults(handler=_run_gaps)


def _run_gaps(args: argparse.Namespace, ctx: Context) -> int:
    stages = ctx.settings.pipeline.check_stages(args.stage) if args.stage is not None else None
    start, end = parse_range(args, ctx)
    if args.output:
        from backfill.export import check_report_path

        check_report_path(args.output)
    warehouse = open_warehouse(ctx, check_tables=False)
    try:
        from backfill.coverage_snapshot import CoverageSnapshot
        from backfill.export import write_report
        from backfill.report import gap_report, ledger_runs, records

        snapshot = CoverageSnapshot.persisted(warehouse, ctx.settings)
        snapshot.check_stage_tables()
        start, end = resolve_range(warehouse, start, end, ctx.today, bounds=snapshot.bounds)
        # Runs and their outcomes, for the hand-off note; a ledger that does not exist is not created.
        runs = (
            ledger_runs(ctx.settings.ledger, start, end, stages or ctx.settings.pipeline.stage_names)
            if args.output
            else None
        )
        report = gap_report(warehouse, ctx.settings, start, end, stage=stages, runs=runs, snapshot=snapshot)
    finally:
        warehouse.close()
    if args.output:
        path = write_report(report, args.output)
        if report.no_data is not None:
            print(f"{report.no_data}; wrote the empty gap report to {path}", file=ctx.out)
            return EXIT_OK
        print(
            f"Wrote the gap report for {start} to {end} ({plural(len(report.real_gaps), 'gap')}, "
            f"{plural(len(report.bootstrap_dates), 'bootstrap date')}) to {path}",
            file=ctx.out,
        )
        return EXIT_OK
    if report.no_data is not None:
        print(report.no_data, file=ctx.out)
        return EXIT_OK
    gaps = records(report.real_gaps)
    dates = len({row["game_date"] for row in gaps})
    print(f"Gaps from {start} to {end}: {plural(len(gaps), 'gap')} on {plural(dates, 'date')}", file=ctx.out)
    if gaps:
        for row in gaps:
            row["covered"] = f"{row['players_covered']}/{row['players_total']}"
        print(text_table(gaps, _GAP_TEXT_COLUMNS), file=ctx.out)
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
