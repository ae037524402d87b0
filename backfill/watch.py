"""The watch: a scheduled check of coverage and stale rows that says what changed since the last one.

A check measures a window of dates (one coverage statement, one stale-rows statement) and lists
its problems: every (date, stage) whose status is a gap (missing, blocked, partial), and every
(date, table, category) with stale rows. It compares them with what the checks before it saw
(for each date, the newest check whose window held it):

- ``new``: a problem no earlier check saw open;
- ``changed``: a gap whose status changed (a stage newly blocked, a partial date now missing);
- ``open``: seen before, still there;
- ``recovered``: seen open before, gone now.

New, changed and recovered findings make one alert (sent only then, so a gap already reported is
not reported again, and its recovery is). The alert goes through the outbox (:mod:`backfill.outbox`),
written with the check's findings: an alert that reached no channel, or whose check was killed
while it delivered, is sent by the next check, with the same delivery id. The check, its findings,
a coverage snapshot and every delivery are recorded in the ledger database (:mod:`backfill.history`).
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from backfill import alerts as alerting
from backfill import coverage, outbox
from backfill.config import Settings
from backfill.coverage import GAP_STATUSES
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.errors import BadInput
from backfill.history import HistoryStore, now_utc
from backfill.stale import stale_counts
from backfill.warehouse import Warehouse

FAIL_ON = ("open", "new")
"""``open``: exit 1 while any problem is there; ``new``: only when something new or changed appeared."""

ALERTING_CHANGES = ("new", "changed", "recovered")
"""Changes worth a message; ``open`` problems were reported already."""

PROBLEM_CHANGES = ("new", "changed", "open")

EXIT_NOT_DELIVERED = 4
"""``check``'s exit code when an alert could not be delivered (it stays in the outbox for the next
check): apart from 1, problems found, so that cron can tell "nobody was told"."""


@dataclass(frozen=True)
class Finding:
    """One problem a check saw, or one that recovered."""

    kind: str  # gap | stale
    game_date: dt.date
    subject: str  # the stage, or table.category
    change: str
    status: str
    previous_status: str | None = None
    covered: int | None = None
    total: int | None = None
    expected_pct: float | None = None
    stale_rows: int | None = None

    @property
    def key(self) -> tuple[str, dt.date, str]:
        return (self.kind, self.game_date, self.subject)

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "game_date": self.game_date,
            "subject": self.subject,
            "change": self.change,
            "status": self.status,
            "previous_status": self.previous_status,
            "covered": self.covered,
            "total": self.total,
            "expected_pct": self.expected_pct,
            "stale_rows": self.stale_rows,
        }

    def describe(self) -> str:
        """One line for people: what, where, how much."""
        if self.kind == "stale":
            table, _, category = self.subject.partition(".")
            if self.change == "recovered":
                return f"{self.game_date} stale {category} rows in {table}: gone"
            return f"{self.game_date} {self.stale_rows} stale {category} rows in {table}"
        figures = ""
        if self.total:
            pct = "-" if self.expected_pct is None else f"{self.expected_pct:.1f}%"
            figures = f": {self.covered} of {self.total} player-games, expected coverage {pct}"
        was = f" (was {self.previous_status})" if self.previous_status and self.change == "changed" else ""
        now = f"back to {self.status}" if self.change == "recovered" else self.status
        return f"{self.game_date} {self.subject} {now}{was}{figures}"


@dataclass(frozen=True)
class CheckResult:
    """What a check found, what it sent, and its exit code."""

    check_id: str
    warehouse: str
    started_at: dt.datetime
    finished_at: dt.datetime
    start: dt.date
    end: dt.date
    fail_on: str
    findings: tuple[Finding, ...]
    alert: alerting.Alert | None = None
    deliveries: tuple[alerting.Delivery, ...] = field(default=())
    no_data: str | None = None
    """The range held no games: what the check says instead of "no problems"."""

    def with_change(self, *changes: str) -> list[Finding]:
        return [finding for finding in self.findings if finding.change in changes]

    @property
    def problems(self) -> list[Finding]:
        return self.with_change(*PROBLEM_CHANGES)

    @property
    def undelivered(self) -> list[alerting.Delivery]:
        """Deliveries that failed in this check (their alerts wait in the outbox)."""
        return [delivery for delivery in self.deliveries if delivery.status != "sent"]

    @property
    def problems_exit_code(self) -> int:
        """1 when something is wrong (by ``fail_on``), else 0."""
        wrong = self.with_change("new", "changed") if self.fail_on == "new" else self.problems
        return 1 if wrong else 0

    @property
    def exit_code(self) -> int:
        """:data:`EXIT_NOT_DELIVERED` when an alert could not be delivered, else 1 when something is
        wrong (by ``fail_on``), else 0."""
        return EXIT_NOT_DELIVERED if self.undelivered else self.problems_exit_code

    @property
    def status(self) -> str:
        return "problems" if self.problems else "ok"

    def summary(self) -> str:
        new = len(self.with_change("new", "changed"))
        still = len(self.with_change("open"))
        recovered = len(self.with_change("recovered"))
        return (
            f"{self.start} to {self.end}: {new} new, {still} still open, {recovered} recovered"
            if self.findings
            else (self.no_data or f"{self.start} to {self.end}: no problems")
        )


def date_link(settings: Settings, day: dt.date) -> str:
    """The console's deep link to a date's drill-down."""
    return f"{settings.console_url.rstrip('/')}/coverage?date={day.isoformat()}"


def current_problems(daily: pd.DataFrame, stale: pd.DataFrame) -> dict[tuple[str, dt.date, str], Finding]:
    """Every problem of the measured window, keyed by (kind, date, subject); change not yet known."""
    problems: dict[tuple[str, dt.date, str], Finding] = {}
    for row in daily[daily["status"].isin(GAP_STATUSES)].itertuples():
        finding = Finding(
            "gap",
            row.game_date,
            str(row.stage),
            "new",
            str(row.status),
            covered=int(row.players_covered),
            total=int(row.players_total),
            expected_pct=None if pd.isna(row.expected_coverage_pct) else float(row.expected_coverage_pct),
        )
        problems[finding.key] = finding
    for row in stale.itertuples():
        finding = Finding(
            "stale",
            row.game_date,
            f"{row.table_name}.{row.category}",
            "new",
            "stale",
            stale_rows=int(row.rows),
        )
        problems[finding.key] = finding
    return problems


def compare(
    current: dict[tuple[str, dt.date, str], Finding],
    previous: dict[tuple[str, dt.date, str], dict[str, Any]],
    daily: pd.DataFrame,
) -> list[Finding]:
    """Each current problem marked new, changed or open, plus the previous ones that recovered."""
    findings = []
    for key, finding in current.items():
        before = previous.get(key)
        if before is None:
            change, was = "new", None
        elif finding.kind == "gap" and before["status"] != finding.status:
            change, was = "changed", before["status"]
        else:
            change, was = "open", before["status"]
        findings.append(_replace(finding, change=change, previous_status=was))
    now = {(row.game_date, str(row.stage)): row for row in daily.itertuples()}
    for key, before in previous.items():
        if key in current:
            continue
        kind, day, subject = key
        if kind == "gap":
            row = now.get((day, subject))
            findings.append(
                Finding(
                    kind,
                    day,
                    subject,
                    "recovered",
                    str(row.status) if row is not None else "unknown",
                    previous_status=before["status"],
                    covered=int(row.players_covered) if row is not None else None,
                    total=int(row.players_total) if row is not None else None,
                    expected_pct=None
                    if row is None or pd.isna(row.expected_coverage_pct)
                    else float(row.expected_coverage_pct),
                )
            )
        else:
            findings.append(
                Finding(kind, day, subject, "recovered", "clean", previous_status="stale", stale_rows=0)
            )
    return sorted(
        findings,
        key=lambda f: (ALERTING_CHANGES.index(f.change) if f.change in ALERTING_CHANGES else 9, f.key),
    )


def _replace(finding: Finding, **changes: Any) -> Finding:
    return replace(finding, **changes)


def build_alert(
    settings: Settings, check_id: str, warehouse: str, start, end, findings: list[Finding]
) -> alerting.Alert | None:
    """One message for the findings worth telling (new, changed, recovered), or None."""
    new = [f for f in findings if f.change in ("new", "changed")]
    resolved = [f for f in findings if f.change == "recovered"]
    if not new and not resolved:
        return None
    still = sum(1 for f in findings if f.change == "open")
    parts = []
    if new:
        parts.append(f"{len(new)} new problem{'s' if len(new) > 1 else ''}")
    if resolved:
        parts.append(f"{len(resolved)} resolved")
    subject = f"Coverage check: {', '.join(parts)} ({start} to {end})"
    lines = [f"{subject} on {warehouse}; {still} still open. Check {check_id}."]
    if new:
        lines.append("New:")
        lines += [f"- {f.describe()} {date_link(settings, f.game_date)}" for f in new]
    if resolved:
        lines.append("Resolved:")
        lines += [f"- {f.describe()} {date_link(settings, f.game_date)}" for f in resolved]

    def data(f: Finding) -> dict[str, Any]:
        return {**f.row(), "game_date": f.game_date.isoformat(), "link": date_link(settings, f.game_date)}

    return alerting.Alert(
        check_id=check_id,
        subject=subject,
        text="\n".join(lines),
        new=tuple(data(f) for f in new),
        resolved=tuple(data(f) for f in resolved),
    )


def new_check_id(now: dt.datetime) -> str:
    return f"chk-{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


def run_check(
    settings: Settings,
    warehouse: Warehouse,
    start: dt.date,
    end: dt.date,
    *,
    who: str,
    fail_on: str = "open",
    secrets: alerting.AlertSecrets | None = None,
    now: Callable[[], dt.datetime] = now_utc,
    sleep: Callable[[float], None] = time.sleep,
) -> CheckResult:
    """Measure, compare with earlier checks, record, and alert on change. Never raises for a delivery."""
    if fail_on not in FAIL_ON:
        raise BadInput(f"--fail-on must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    if start > end:
        raise BadInput(f"range is reversed: start {start} is after end {end}")
    secrets = alerting.load_secrets() if secrets is None else secrets
    alerting.check_alert_settings(settings, secrets)
    targets = alerting.channels(settings, secrets)

    started_at = now()
    snapshot = CoverageSnapshot.persisted(warehouse, settings)
    daily = snapshot.daily(start, end)
    no_data = coverage.no_data_note(coverage.has_games(daily), start, end, snapshot.bounds)
    stale = stale_counts(warehouse, settings, start, end)
    store = HistoryStore.of(settings)
    key = settings.warehouse
    previous = store.previous_state(key, start, end)
    # What earlier checks announced is not news again: their alerts wait in the outbox if unheard.
    findings = compare(current_problems(daily, stale), previous.findings, daily)
    finished_at = now()
    check_id = new_check_id(finished_at)
    result = CheckResult(
        check_id, key, started_at, finished_at, start, end, fail_on, tuple(findings), no_data=no_data
    )
    alert = build_alert(settings, check_id, warehouse.describe(), start, end, findings)
    store.record_check(
        {
            "check_id": check_id,
            "warehouse": key,
            "started_at": started_at,
            "finished_at": finished_at,
            "checked_by": who,
            "window_start": start,
            "window_end": end,
            "fail_on": fail_on,
            "status": result.status,
            "exit_code": result.problems_exit_code,
            "new_problems": len(result.with_change("new", "changed")),
            "open_problems": len(result.problems),
            "recovered": len(result.with_change("recovered")),
            "summary": result.summary(),
        },
        (finding.row() for finding in findings),
        outbox.rows_for(alert, key, targets, finished_at) if alert is not None else (),
    )
    store.record_snapshot(key, "check", check_id, daily, finished_at)
    # This check's alert and any an earlier check could not deliver, oldest first.
    deliveries = outbox.deliver_pending(
        store.engine, key, targets, alerting.alert_policy(settings, sleep), secrets, now, store.record_alert
    )
    return replace(result, alert=alert, deliveries=tuple(deliveries))
