"""``check``: the watch, for cron or CI: what changed in coverage and stale rows since the last check."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
from typing import Any

from backfill.cli.common import EXIT_COULD_NOT_CHECK, Context, open_warehouse, parse_range, text_table
from backfill.errors import BadInput

DEFAULT_SINCE = "7d"


def add_check(subparsers: Any, common: argparse.ArgumentParser) -> None:
    parser = subparsers.add_parser(
        "check",
        parents=[common],
        help="check coverage and stale rows, say what is new or recovered, alert on change",
        description="Measure coverage and stale rows over a window (--since Nd: the last N days up to "
        "today, the default being 7d; or --start and --end), compare with the checks recorded before "
        "in the ledger, and report what is new (a date that fell below the ok mark, a stage newly "
        "blocked, stale rows that appeared), still open, or recovered. New and recovered problems are "
        "sent once to the configured webhook and e-mail (see README, 'Watch'). Exit 0: nothing wrong; "
        "1: something wrong (--fail-on open: any problem; new: only new or changed ones); 2: bad input; "
        "3: could not check (the warehouse or the ledger could not be read; nothing was compared); "
        "4: an alert could not be delivered (said on stderr; the next check sends it again).",
    )
    parser.add_argument(
        "--since", metavar="Nd", help=f"the last N days up to today (default: {DEFAULT_SINCE})"
    )
    parser.add_argument("--start", metavar="D", help="first game date, YYYY-MM-DD (with --end)")
    parser.add_argument("--end", metavar="D", help="last game date, YYYY-MM-DD (with --start)")
    parser.add_argument(
        "--fail-on",
        choices=("open", "new"),
        default="open",
        help="exit 1 while any problem is open (default), or only when one is new or changed",
    )
    parser.add_argument(
        "--format",
        choices=("table", "json", "markdown"),
        default="table",
        help="output format (default: table)",
    )
    parser.set_defaults(handler=_run_check)


def _window(args: argparse.Namespace, ctx: Context) -> tuple[dt.date, dt.date]:
    """The window to check, validated without touching anything."""
    if args.since and (args.start or args.end):
        raise BadInput("give --since or --start/--end, not both")
    if args.start or args.end:
        if not (args.start and args.end):
            raise BadInput("--start and --end go together (or use --since Nd)")
        return parse_range(args, ctx)
    since = args.since or DEFAULT_SINCE
    match = re.fullmatch(r"\s*(\d{1,5})d\s*", since)
    if not match:
        raise BadInput(f"--since {since!r} is not a number of days (expected e.g. 7d)")
    days = int(match.group(1))
    if not 1 <= days < ctx.settings.max_range_days:
        raise BadInput(f"--since must be between 1d and {ctx.settings.max_range_days - 1}d, got {since}")
    today = ctx.today()
    return today - dt.timedelta(days=days), today


_COLUMNS = [
    ("change", "change"),
    ("date", "game_date"),
    ("what", "what"),
    ("status", "status"),
    ("covered", "covered_text"),
    ("expected %", "expected_pct"),
    ("link", "link"),
]


def _rows(result, settings) -> list[dict[str, Any]]:
    from backfill.watch import date_link

    rows = []
    for finding in result.findings:
        row = finding.row()
        row["what"] = ("stale " if finding.kind == "stale" else "") + finding.subject
        if finding.change == "changed":
            row["status"] = f"{finding.status} (was {finding.previous_status})"
        row["covered_text"] = (
            f"{finding.covered}/{finding.total}"
            if finding.total is not None
            else (f"{finding.stale_rows} rows" if finding.kind == "stale" and finding.stale_rows else "-")
        )
        row["link"] = date_link(settings, finding.game_date)
        rows.append(row)
    return rows


def _json(result, settings) -> str:
    from backfill.watch import date_link

    rows = [
        {
            **finding.row(),
            "game_date": finding.game_date.isoformat(),
            "link": date_link(settings, finding.game_date),
        }
        for finding in result.findings
    ]
    return json.dumps(
        {
            "check_id": result.check_id,
            "warehouse": result.warehouse,
            "start": result.start.isoformat(),
            "end": result.end.isoformat(),
            "checked_at": result.finished_at.isoformat(),
            "status": result.status,
            "exit_code": result.exit_code,
            "fail_on": result.fail_on,
            "summary": result.summary(),
            "findings": rows,
            "alerts": [delivery.__dict__ for delivery in result.deliveries],
            "alerts_not_delivered": len(result.undelivered),
        },
        indent=2,
    )


def _markdown(result, settings) -> str:
    lines = [f"## Coverage check {result.check_id}", "", f"{result.summary()} ({result.status})", ""]
    rows = _rows(result, settings)
    if rows:
        lines += ["| change | date | what | status | covered | expected % |", "|---|---|---|---|---|---|"]
        for row in rows:
            pct = "-" if row["expected_pct"] is None else f"{row['expected_pct']:.1f}"
            lines.append(
                f"| {row['change']} | [{row['game_date']}]({row['link']}) | {row['what']} | {row['status']} "
                f"| {row['covered_text']} | {pct} |"
            )
        lines.append("")
    for delivery in result.deliveries:
        lines.append(f"- alert by {delivery.channel} to {delivery.target}: {delivery.status}")
    return "\n".join(lines).rstrip() + "\n"


def _run_check(args: argparse.Namespace, ctx: Context) -> int:
    from backfill.access import local_user
    from backfill.alerts import check_alert_settings, load_secrets
    from backfill.outage import first_line, outage_of
    from backfill.watch import run_check

    start, end = _window(args, ctx)
    secrets = load_secrets()
    check_alert_settings(ctx.settings, secrets)
    try:
        warehouse = open_warehouse(ctx)
        try:
            result = run_check(
                ctx.settings, warehouse, start, end, who=local_user(), fail_on=args.fail_on, secrets=secrets
            )
        finally:
            warehouse.close()
    except Exception as exc:  # noqa: BLE001 - the arguments were fine; the check itself did not happen
        outage = outage_of(exc)
        what = outage.what if outage is not None else f"{type(exc).__name__}: {first_line(exc)}"
        print(f"error: could not check: {what[:1].lower()}{what[1:]}", file=ctx.err)
        return EXIT_COULD_NOT_CHECK
    if result.alert is not None and not result.deliveries:
        print(
            "note: there is news to tell but no alert channel is configured "
            "(BACKFILL_ALERT_WEBHOOK_URL, or alert_email_to and smtp_host)",
            file=ctx.err,
        )
    if args.format == "json":
        print(_json(result, ctx.settings), file=ctx.out)
    elif args.format == "markdown":
        ctx.out.write(_markdown(result, ctx.settings))
    else:
        print(f"Check {result.check_id}: {result.summary()}", file=ctx.out)
        if result.findings:
            print(text_table(_rows(result, ctx.settings), _COLUMNS), file=ctx.out)
        for delivery in result.deliveries:
            if delivery.status == "sent":
                detail = f" after {delivery.attempts} attempts" if delivery.attempts > 1 else ""
                print(f"Alert by {delivery.channel} to {delivery.target}: sent{detail}", file=ctx.out)
    for delivery in result.undelivered:
        # On stderr whatever the format: cron mails it, and the JSON on stdout stays parseable.
        print(
            f"error: alert {delivery.delivery_id} of check {delivery.check_id} by {delivery.channel} to "
            f"{delivery.target} not delivered after {delivery.attempts} attempts: {delivery.error}; "
            "the next check sends it again",
            file=ctx.err,
        )
    return result.exit_code
