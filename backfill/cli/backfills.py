"""Commands that write or follow backfills: ``run``, ``runs``, ``stale`` and the hidden ``worker``.

``run`` executes in the foreground and prints the runner's log lines as they happen (``--detach``
hands the run to a background worker instead); either way the run is in the ledger, where
``runs`` and the console read it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from typing import Any

from backfill.cli.common import (
    EXIT_BAD_INPUT,
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

# -- run ------------------------------------------------------------------------------------------


def add_run(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "run",
        parents=[common],
        help="backfill the pipeline's stages for dates (gated, atomic, retried, verified)",
        description="Recompute the selected dates of each stage in dependency order (built-in: MLFS, then "
        "predictions) with the stage's processor, and verify each date afterwards. A gated stage "
        "(predictions) runs on a date only when its upstream stage covers at least "
        "--min-mlfs-coverage percent of it; below, the date is blocked (not failed). Transient "
        "errors are retried; a permanent one fails only its dates. "
        "Exit 0: every date done; 1: some dates failed or were blocked; 2: bad input.",
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--dates", metavar="D,D,...", help="comma-separated game dates")
    which.add_argument("--start", metavar="D", help="first date of a range (with --end)")
    which.add_argument(
        "--rerun-failed", metavar="RUN_ID", help="the failed, blocked or cancelled dates of a run"
    )
    parser.add_argument("--end", metavar="D", help="last date of a range (with --start)")
    parser.add_argument(
        "--only-transient", action="store_true", help="with --rerun-failed: only the transient failures"
    )
    parser.add_argument(
        "--stages",
        metavar="S,S",
        help="stages of the pipeline, e.g. mlfs,predictions (default: all; with --rerun-failed: as needed)",
    )
    parser.add_argument(
        "--skip-mlfs-check",
        "--skip-gates",
        dest="skip_gates",
        action="store_true",
        help="run gated stages whatever their upstream covers",
    )
    parser.add_argument(
        "--min-mlfs-coverage",
        "--min-upstream-coverage",
        dest="min_upstream_coverage",
        metavar="PCT",
        help="the gate for this run, 0-100 (default: each stage's own; the built-in MLFS gate is 90)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show the plan and write nothing")
    parser.add_argument("--max-attempts", metavar="N", help="attempts per statement (default: 4)")
    parser.add_argument(
        "--retry-delays", metavar="S,S,S", help="seconds before each retry (default: 30,60,120)"
    )
    parser.add_argument("--batch-size", metavar="N", help="dates per statement (default: 31)")
    parser.add_argument(
        "--detach", action="store_true", help="run in a background process and print the run id at once"
    )
    parser.set_defaults(handler=_run_backfill)


def _request(args: argparse.Namespace, ctx: Context):
    """(request, parent run id, settings): a rerun takes its run's recorded settings, not today's."""
    from backfill.request import BackfillRequest

    overrides = {
        "min_upstream_coverage_pct": args.min_upstream_coverage,
        "max_attempts": args.max_attempts,
        "retry_delays": args.retry_delays,
        "batch_size": args.batch_size,
    }
    if args.rerun_failed:
        if args.end:
            raise BadInput("--end goes with --start, not with --rerun-failed")
        from backfill.launch import rerun_request
        from backfill.ledger import Ledger
        from backfill.replay import settings_for_run

        ledger = Ledger(ctx.settings.ledger)
        settings = settings_for_run(ctx.settings, ledger.get_run(args.rerun_failed).params, args.rerun_failed)
        base = rerun_request(ledger, args.rerun_failed, settings.pipeline, args.only_transient)
        # Flags given now override the failed run's settings.
        request = BackfillRequest.build(
            settings,
            dates=base.dates,
            stages=args.stages or base.stages,
            skip_gates=args.skip_gates or base.skip_gates,
            today=ctx.today,
            **{key: value if value is not None else getattr(base, key) for key, value in overrides.items()},
        )
        return request, args.rerun_failed, settings
    if args.only_transient:
        raise BadInput("--only-transient goes with --rerun-failed")
    if args.start and not args.end:
        raise BadInput("--start needs --end (or use --dates)")
    if args.end and not args.start:
        raise BadInput("--end needs --start")
    request = BackfillRequest.build(
        ctx.settings,
        dates=args.dates,
        start=args.start,
        end=args.end,
        stages=args.stages,
        skip_gates=args.skip_gates,
        today=ctx.today,
        **overrides,
    )
    return request, None, ctx.settings


_PLAN_COLUMNS = [
    ("date", "game_date"),
    ("stage", "stage"),
    ("action", "action"),
    ("now", "status_now"),
    ("covered", "covered"),
    ("coverage %", "coverage_now_pct"),
    ("stale rows", "stale_rows_to_go"),
    ("gate", "gate"),
]


def _run_backfill(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.access import local_user

    request, parent, settings = _request(args, ctx)
    # The launcher brings the ledger (SQLAlchemy): imported once the input is known good, so bad
    # input is answered without it.
    from backfill.launch import run_here, submit

    ctx = replace(ctx, settings=settings)
    who = local_user()
    warehouse = open_warehouse(ctx, check_tables=args.dry_run)
    if not args.dry_run:
        from backfill.cost_labels import job_labels

        # Everything a backfill command sends is the run's (a plan reads, like a check).
        warehouse.base_labels = job_labels("run", who)
    if args.dry_run:
        from backfill.holds import held_dates, held_text
        from backfill.launch import preflight
        from backfill.ledger import Ledger
        from backfill.plan import dry_run
        from backfill.report import records

        warnings = preflight(ctx.settings, warehouse, request)
        holds = held_dates(Ledger(ctx.settings.ledger), warehouse.url, request.items())
        planned = dry_run(warehouse, ctx.settings, request, holds)
        from backfill.coverage import data_bounds, has_games, no_data_note

        no_data = no_data_note(
            has_games(planned), min(request.dates), max(request.dates), lambda: data_bounds(warehouse)
        )
        if no_data is not None:
            print(f"Dry run: {no_data}; nothing to backfill, nothing is written.", file=ctx.out)
            return EXIT_OK
        plan = records(planned)
        for row in plan:
            row["covered"] = f"{row['players_covered']}/{row['players_total']}"
        print(
            f"Dry run: {plural(len(request.dates), 'date')} x {', '.join(request.stages)} on "
            f"{warehouse.describe()}; nothing is written.",
            file=ctx.out,
        )
        print(text_table(plan, _PLAN_COLUMNS), file=ctx.out)
        if holds:  # the launch would be refused (backfill.launch.submit); say so before it is tried
            print(f"warning: a launch would be refused: {held_text(holds)}", file=ctx.out)
        for warning in warnings:
            print(f"warning: {warning}", file=ctx.out)
        from backfill.cost import backfill_estimate

        print_estimate(ctx, lambda: backfill_estimate(warehouse, ctx.settings, request))
        return EXIT_OK
    if args.detach:
        from backfill.doctor import check_before_writing

        check_before_writing(warehouse)  # here, in one line, rather than in the worker's log
        run_id = submit(ctx.settings, request, who, parent_run_id=parent, warehouse=warehouse)
        print(
            f"Started run {run_id} in the background; follow it with: python -m backfill runs show {run_id}",
            file=ctx.out,
        )
        return EXIT_OK
    began = time.perf_counter()
    result = run_here(
        ctx.settings,
        request,
        who,
        parent_run_id=parent,
        warehouse=warehouse,
        echo=lambda line: print(line, file=ctx.err),
    )
    return _report_result(result, ctx, time.perf_counter() - began, warehouse)


def _report_result(result, ctx: Context, seconds: float | None = None, warehouse=None) -> int:
    from backfill.ledger import Ledger

    took = f" in {seconds:.1f} s" if seconds is not None else ""
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts.items()))
    print(
        f"Run {result.run_id} {result.status}{took}: {counts}; {plural(result.statements, 'warehouse statement')}",
        file=ctx.out,
    )
    if result.status == "refused":
        print(f"  {result.message}", file=ctx.out)
    problems = [
        item
        for item in Ledger(ctx.settings.ledger).items(result.run_id)
        if item["status"] in ("failed", "blocked")
    ]
    for item in problems:
        print(
            f"  {item['game_date']} {item['stage']}: {item['status']}"
            + (f" ({item['error_class']})" if item["status"] == "failed" else "")
            + f": {item['error_message']}",
            file=ctx.out,
        )
    if problems:
        print(f"  rerun them with: python -m backfill run --rerun-failed {result.run_id}", file=ctx.out)
    _print_coverage_after(ctx, Ledger(ctx.settings.ledger).get_run(result.run_id), warehouse, result.measured)
    return result.exit_code


def _print_coverage_after(ctx: Context, run, warehouse=None, measured=None) -> None:
    """The coverage of the run's dates per stage: what the run left behind, from its own last
    measurement of each (taken after its writes) where it has one for every date and stage, else
    read afresh (re-measuring a whole history would cost as much again as the run's verification)."""
    import datetime as dt

    from backfill import coverage
    from backfill.replay import settings_for_run
    from backfill.warehouse import connect

    days = sorted(dt.date.fromisoformat(day) for day in run.params.get("dates", []))
    if not days or run.status == "refused":
        return
    stages = run.params.get("stages", [])
    settings = settings_for_run(ctx.settings, run.params, run.run_id)
    try:
        if measured is not None and len(
            measured[measured["game_date"].isin(days) & measured["stage"].isin(stages)]
        ) == len(days) * len(stages):
            daily = measured
        else:
            reader = warehouse or connect(settings)
            try:
                daily = coverage.daily_coverage(reader, settings, days[0], days[-1])
            finally:
                reader.close()  # the file is free again for whoever reads next (DuckDB: one configuration)
    except Exception as exc:  # noqa: BLE001 - the run is over either way; say why the figures are missing
        print(
            f"  coverage now: not read ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", file=ctx.out
        )
        return
    daily = daily[daily["game_date"].isin(days)]
    print(f"Coverage of the run's {plural(len(days), 'date')} now:", file=ctx.out)
    for name in run.params.get("stages", []):
        rows = daily[daily["stage"] == name]
        covered, total = int(rows["expected_covered"].sum()), int(rows["expected_total"].sum())
        statuses = rows["status"].value_counts()
        by_status = ", ".join(f"{count} {status}" for status, count in statuses.items())
        pct = f"{100.0 * covered / total:.1f}%" if total else "-"
        print(
            f"  {settings.pipeline.label(name)[:1].upper()}{settings.pipeline.label(name)[1:]}: {pct} expected coverage "
            f"({covered:,} of {plural(total, 'player-game')}); {plural(len(rows), 'date')}: {by_status}",
            file=ctx.out,
        )


# -- runs -----------------------------------------------------------------------------------------

MAX_LISTED_RUNS = 10_000
"""More runs than anyone reads in a terminal; a larger --limit is a typo (and overflows SQLite)."""


def add_runs(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "runs",
        parents=[common],
        help="run history; runs show|resume|cancel RUN_ID",
        description="The run history from the ledger (newest first); 'runs show RUN_ID' gives a run's "
        "dates x stages with status, attempts, rows written, coverage before/after and errors; "
        "'runs resume RUN_ID' finishes an interrupted run (only its unfinished dates); "
        "'runs cancel RUN_ID' stops a run before its next batch.",
    )
    parser.add_argument(
        "--limit", type=int, default=20, metavar="N", help="how many runs to list (default: 20)"
    )
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION")
    for name, helptext in (
        ("show", "a run's dates x stages"),
        ("resume", "finish an interrupted run"),
        ("cancel", "stop a run before its next batch"),
    ):
        action = actions.add_parser(name, parents=[common], help=helptext, description=helptext)
        action.add_argument("run_id", metavar="RUN_ID")
    parser.set_defaults(handler=_run_runs)


_RUN_COLUMNS = [
    ("run", "run_id"),
    ("status", "status"),
    ("by", "created_by"),
    ("created", "created"),
    ("dates", "dates"),
    ("stages", "stages"),
    ("statements", "statements"),
    ("outcome", "message"),
]

_ITEM_COLUMNS = [
    ("date", "game_date"),
    ("stage", "stage"),
    ("status", "status"),
    ("attempts", "attempts"),
    ("seconds", "duration_s"),
    ("rows", "rows_written"),
    ("before %", "coverage_before"),
    ("after %", "coverage_after"),
    ("stale deleted", "stale_rows_deleted"),
    ("error", "error"),
]


def _run_runs(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.access import local_user
    from backfill.ledger import Ledger

    ledger = Ledger(ctx.settings.ledger)
    ledger.detect_interrupted()
    if args.runs_action is None:
        if not 1 <= args.limit <= MAX_LISTED_RUNS:
            raise BadInput(f"--limit must be between 1 and {MAX_LISTED_RUNS}, got {args.limit}")
        runs = ledger.list_runs(args.limit)
        if not runs:
            print("No runs recorded yet.", file=ctx.out)
            return EXIT_OK
        rows = [
            {
                "run_id": run.run_id,
                "status": run.status,
                "created_by": run.created_by,
                "created": run.created_at[:19].replace("T", " "),
                "dates": len(run.params.get("dates", [])),
                "stages": ",".join(run.params.get("stages", [])),
                "statements": run.statements,
                "message": run.message or "",
            }
            for run in runs
        ]
        print(text_table(rows, _RUN_COLUMNS), file=ctx.out)
        return EXIT_OK
    if args.runs_action == "show":
        return _show_run(ledger, args.run_id, ctx)
    if args.runs_action == "cancel":
        from backfill.launch import cancel

        cancel(ctx.settings, args.run_id, local_user())
        print(f"Asked run {args.run_id} to stop before its next batch.", file=ctx.out)
        return EXIT_OK
    from backfill.launch import resume

    began = time.perf_counter()
    result = resume(ctx.settings, args.run_id, local_user(), echo=lambda line: print(line, file=ctx.err))
    return _report_result(result, ctx, time.perf_counter() - began)


def _gate_text(params: dict) -> str:
    from backfill.request import BackfillRequest

    request = BackfillRequest.from_params(params)
    if request.skip_gates:
        return "skipped"
    return (
        "each stage's own"
        if request.min_upstream_coverage_pct is None
        else f"{request.min_upstream_coverage_pct:g}%"
    )


def _show_run(ledger, run_id: str, ctx: Context) -> int:
    run = ledger.get_run(run_id)
    params = run.params
    print(
        f"Run {run.run_id}: {run.status}\n"
        f"  by {run.created_by} at {run.created_at}; on {run.warehouse}\n"
        f"  {plural(len(params['dates']), 'date')} x {', '.join(params['stages'])}; gate "
        f"{_gate_text(params)}; "
        f"{params['max_attempts']} attempts, delays {params['retry_delays']}; batches of {params['batch_size']}\n"
        f"  {plural(run.statements, 'warehouse statement')}"
        + (f"; rerun of {run.parent_run_id}" if run.parent_run_id else "")
        + (f"\n  {run.message}" if run.message else ""),
        file=ctx.out,
    )
    items = ledger.items(run_id)
    for item in items:
        error = item["error_message"] or ""
        item["error"] = f"[{item['error_class']}] {error}" if item["error_class"] else error
    print(text_table(items, _ITEM_COLUMNS), file=ctx.out)
    events = ledger.events(run_id, SHOWN_LOG_LINES)
    if events:
        print(f"Log (last {len(events)} lines, jobs' output included):", file=ctx.out)
        for event in events:
            print(f"  {event['at'][11:19]} {event['level']:<7} {event['message']}", file=ctx.out)
    return EXIT_OK


SHOWN_LOG_LINES = 40
"""Log lines ``runs show`` prints under the items (the console shows them live)."""


# -- stale ----------------------------------------------------------------------------------------


def add_stale(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "stale",
        parents=[common],
        help="stale rows by date, table and category; --delete --yes removes them",
        description="Stale rows of the pipeline's stage tables: orphans (no "
        "reference row), duplicates, outdated rows (computed before their upstream row "
        "changed), old versions and NULLs in required columns. With --delete --yes they are deleted "
        "in one transaction and the deletion is recorded in the ledger.",
    )
    add_range_options(parser)
    parser.add_argument("--delete", action="store_true", help="delete the stale rows (needs --yes)")
    parser.add_argument("--yes", action="store_true", help="confirm the deletion")
    parser.set_defaults(handler=_run_stale)


_STALE_COLUMNS = [("date", "game_date"), ("table", "table_name"), ("category", "category"), ("rows", "rows")]


def _run_stale(args: argparse.Namespace, ctx: Context) -> int:
    from backfill import stale
    from backfill.access import local_user, require_operator
    from backfill.report import records

    stages = ctx.settings.pipeline.check_stages(args.stage) if args.stage is not None else None
    if args.yes and not args.delete:
        raise BadInput("--yes goes with --delete")
    who = local_user()
    if args.delete:
        require_operator(ctx.settings, who, "delete stale rows")
    start, end = parse_range(args, ctx)
    warehouse = open_warehouse(ctx)
    from backfill.doctor import check_before_reading, check_before_writing

    # A deletion is refused before the rows are even listed; a listing needs every column it reads.
    if args.delete:
        check_before_writing(warehouse)
    else:
        check_before_reading(warehouse)
    start, end = resolve_range(warehouse, start, end, ctx.today)
    counts = stale.stale_counts(warehouse, ctx.settings, start, end, stages)
    if counts.empty:
        from backfill.coverage import data_bounds, no_data_note, reference_rows

        games = bool(reference_rows(warehouse, start, end))
        note = no_data_note(games, start, end, lambda: data_bounds(warehouse))
        print(note or f"No stale rows from {start} to {end}.", file=ctx.out)
        return EXIT_OK
    total = int(counts["rows"].sum())
    print(f"Stale rows from {start} to {end}: {total} by category (a row may be in several)", file=ctx.out)
    print(text_table(records(counts), _STALE_COLUMNS), file=ctx.out)
    if not args.delete:
        return EXIT_OK
    if not args.yes:
        print("error: refusing to delete without --yes (the rows above would go)", file=ctx.err)
        return EXIT_BAD_INPUT
    from backfill.launch import delete_stale_rows

    deleted = delete_stale_rows(ctx.settings, start, end, who, warehouse=warehouse, stages=stages)
    print(
        f"Deleted the stale rows of {plural(deleted['game_date'].nunique(), 'date')} in one transaction "
        f"(recorded in the ledger as done by {who}).",
        file=ctx.out,
    )
    return EXIT_OK


# -- worker (internal) ----------------------------------------------------------------------------


def add_worker(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "worker",
        parents=[common],
        help="execute a queued run (what a detached run's background process does)",
        description="Execute a queued run; the console and run --detach start this in the background.",
    )
    parser.add_argument("run_id", metavar="RUN_ID")
    parser.set_defaults(handler=_run_worker)


def _run_worker(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.launch import work

    result = work(ctx.settings, args.run_id, echo=lambda line: print(line, file=ctx.err, flush=True))
    return _report_result(result, ctx)
