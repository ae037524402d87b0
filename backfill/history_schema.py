"""The watch's tables in the ledger database: checks, their findings and alerts, coverage snapshots.

One SQLAlchemy Core definition serves SQLite and PostgreSQL. Kept apart from the code that uses
them so that the ledger's migrations can take these definitions over as they are.

- ``checks``: one row per ``python -m backfill check``: when, which window, what it found.
- ``check_findings``: every problem a check saw (a gap of a (date, stage), stale rows of a
  (date, table, category)) and how it compares with the check before: new, changed, open or
  recovered. The open findings of the latest check that covered a date are the watch's memory.
- ``alerts``: every delivery of an alert (webhook or e-mail): sent or failed, attempts, error.
  Never the webhook URL or a password: the target is the receiver's host or the mail recipients.
- ``coverage_snapshots``: a date's coverage per stage as a check or a finished run measured it,
  stored only when it differs from the latest snapshot of that (warehouse, date, stage).
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

checks = Table(
    "checks",
    metadata,
    Column("check_id", String(40), primary_key=True),
    Column("warehouse", String(400), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True), nullable=False),
    Column("checked_by", String(200), nullable=False),
    Column("window_start", Date, nullable=False),
    Column("window_end", Date, nullable=False),
    Column("fail_on", String(8), nullable=False),
    Column("status", String(16), nullable=False),  # ok | problems
    Column("exit_code", Integer, nullable=False),
    Column("new_problems", Integer, nullable=False),
    Column("open_problems", Integer, nullable=False),
    Column("recovered", Integer, nullable=False),
    Column("summary", Text, nullable=False),
)
Index("checks_by_time", checks.c.warehouse, checks.c.finished_at)

check_findings = Table(
    "check_findings",
    metadata,
    Column("check_id", String(40), ForeignKey("checks.check_id"), primary_key=True),
    Column("kind", String(16), primary_key=True),  # gap | stale
    Column("game_date", Date, primary_key=True),
    Column("subject", String(200), primary_key=True),  # the stage, or table.category
    Column("change", String(16), nullable=False),  # new | changed | open | recovered
    Column("status", String(32), nullable=False),  # coverage status now, or "stale"
    Column("previous_status", String(32)),
    Column("covered", Integer),
    Column("total", Integer),
    Column("expected_pct", Float),
    Column("stale_rows", Integer),
)
Index("findings_by_date", check_findings.c.game_date, check_findings.c.subject)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", Integer, primary_key=True, autoincrement=True),
    Column("check_id", String(40), ForeignKey("checks.check_id"), nullable=False),
    Column("channel", String(16), nullable=False),  # webhook | email
    Column("target", String(400), nullable=False),
    Column("sent_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),  # sent | failed
    Column("attempts", Integer, nullable=False),
    Column("error", Text),
    Column("new_problems", Integer, nullable=False),
    Column("resolved", Integer, nullable=False),
    Column("message", Text, nullable=False),
)
Index("alerts_by_check", alerts.c.check_id)

coverage_snapshots = Table(
    "coverage_snapshots",
    metadata,
    Column("snapshot_id", Integer, primary_key=True, autoincrement=True),
    Column("warehouse", String(400), nullable=False),
    Column("taken_at", DateTime(timezone=True), nullable=False),
    Column("source", String(16), nullable=False),  # check | run
    Column("source_id", String(40), nullable=False),
    Column("game_date", Date, nullable=False),
    Column("stage", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("covered", Integer, nullable=False),
    Column("total", Integer, nullable=False),
    Column("expected_pct", Float),
)
Index(
    "snapshots_by_date",
    coverage_snapshots.c.warehouse,
    coverage_snapshots.c.game_date,
    coverage_snapshots.c.stage,
    coverage_snapshots.c.taken_at,
)

TABLES = (checks, check_findings, alerts, coverage_snapshots)
"""Every table of the watch, in creation order."""
