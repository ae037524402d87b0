"""The ledger's tables, defined once for SQLite and PostgreSQL (the latest schema version).

Timestamps are ISO 8601 text in UTC and parameters are JSON text, as in the first ledgers, so an
old SQLite file upgrades in place without rewriting its rows. Statuses are text; which values and
transitions are legal is decided in :mod:`backfill.ledger.status`.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, nullable=False, server_default="backfill"),
    sa.Column("created_at", sa.Text, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Column("warehouse", sa.Text, nullable=False),
    sa.Column("parent_run_id", sa.Text),
    sa.Column("host", sa.Text),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", sa.Text),
    sa.Column("heartbeat_at", sa.Text),
    sa.Column("finished_at", sa.Text),
    sa.Column("cancel_requested", sa.Integer, nullable=False, server_default="0"),
    sa.Column("statements", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    # When the holder process started (clock ticks since boot, Linux): a reused pid is not the holder.
    sa.Column("pid_started", sa.BigInteger),
    # The key a launch carried (one per click in the console): a repeated key records no second run.
    sa.Column("launch_key", sa.Text),
    sa.Index("runs_by_launch_key", "launch_key", unique=True),
)

items = sa.Table(
    "items",
    metadata,
    sa.Column("run_id", sa.Text, sa.ForeignKey("runs.run_id"), primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("game_date", sa.Text, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("started_at", sa.Text),
    sa.Column("finished_at", sa.Text),
    sa.Column("duration_s", sa.Float),
    sa.Column("rows_written", sa.Integer),
    sa.Column("coverage_before", sa.Float),
    sa.Column("coverage_after", sa.Float),
    sa.Column("error_class", sa.Text),
    sa.Column("error_message", sa.Text),
    sa.Column("stale_rows_deleted", sa.Integer),
    sa.Index("items_by_status", "run_id", "status"),
)

leases = sa.Table(
    "leases",
    metadata,
    # The primary key is the lock: two runs can never both hold a (warehouse, stage, date).
    sa.Column("warehouse", sa.Text, primary_key=True),
    sa.Column("stage", sa.Text, primary_key=True),
    sa.Column("game_date", sa.Text, primary_key=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("acquired_at", sa.Text, nullable=False),
    sa.Index("leases_by_run", "run_id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("at", sa.Text, nullable=False),
    sa.Column("level", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Index("events_by_run", "run_id", "event_id"),
    sqlite_autoincrement=True,
)

actions = sa.Table(
    "actions",
    metadata,
    sa.Column("action_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Text, nullable=False),
    sa.Column("who", sa.Text, nullable=False),
    sa.Column("action", sa.Text, nullable=False),
    sa.Column("run_id", sa.Text),
    sa.Column("details", sa.Text, nullable=False),
    sqlite_autoincrement=True,
)

schema_versions = sa.Table(
    "ledger_schema_versions",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
)
"""One row per schema version applied; the ledger is at the highest."""


# -- the watch (python -m backfill check, backfill.history) ---------------------------------------
#
# - ``checks``: one row per ``python -m backfill check``: when, which window, what it found.
# - ``check_findings``: every problem a check saw (a gap of a (date, stage), stale rows of a
#   (date, table, category)) and how it compares with the check before: new, changed, open or
#   recovered. The open findings of the latest check that covered a date are the watch's memory.
# - ``alerts``: every delivery of an alert (webhook or e-mail): sent or failed, attempts, error.
#   Never the webhook URL or a password: the target is the receiver's host or the mail recipients.
# - ``coverage_snapshots``: a date's coverage per stage as a check or a finished run measured it,
#   stored only when it differs from the latest snapshot of that (warehouse, date, stage).

checks = sa.Table(
    "checks",
    metadata,
    sa.Column("check_id", sa.String(40), primary_key=True),
    sa.Column("warehouse", sa.String(400), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("checked_by", sa.String(200), nullable=False),
    sa.Column("window_start", sa.Date, nullable=False),
    sa.Column("window_end", sa.Date, nullable=False),
    sa.Column("fail_on", sa.String(8), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # ok | problems
    sa.Column("exit_code", sa.Integer, nullable=False),
    sa.Column("new_problems", sa.Integer, nullable=False),
    sa.Column("open_problems", sa.Integer, nullable=False),
    sa.Column("recovered", sa.Integer, nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
)
sa.Index("checks_by_time", checks.c.warehouse, checks.c.finished_at)

check_findings = sa.Table(
    "check_findings",
    metadata,
    sa.Column("check_id", sa.String(40), sa.ForeignKey("checks.check_id"), primary_key=True),
    sa.Column("kind", sa.String(16), primary_key=True),  # gap | stale
    sa.Column("game_date", sa.Date, primary_key=True),
    sa.Column("subject", sa.String(200), primary_key=True),  # the stage, or table.category
    sa.Column("change", sa.String(16), nullable=False),  # new | changed | open | recovered
    sa.Column("status", sa.String(32), nullable=False),  # coverage status now, or "stale"
    sa.Column("previous_status", sa.String(32)),
    sa.Column("covered", sa.Integer),
    sa.Column("total", sa.Integer),
    sa.Column("expected_pct", sa.Float),
    sa.Column("stale_rows", sa.Integer),
)
sa.Index("findings_by_date", check_findings.c.game_date, check_findings.c.subject)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("alert_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("check_id", sa.String(40), sa.ForeignKey("checks.check_id"), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # webhook | email
    sa.Column("target", sa.String(400), nullable=False),
    sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # sent | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("new_problems", sa.Integer, nullable=False),
    sa.Column("resolved", sa.Integer, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
)
sa.Index("alerts_by_check", alerts.c.check_id)

alert_outbox = sa.Table(
    "alert_outbox",
    metadata,
    # One alert for one channel, written with its check; "sent" only once the receiver accepted it.
    sa.Column("delivery_id", sa.String(40), primary_key=True),  # what receivers deduplicate by
    sa.Column("check_id", sa.String(40), sa.ForeignKey("checks.check_id"), nullable=False),
    sa.Column("warehouse", sa.String(400), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),  # webhook | email
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | sent | abandoned
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", sa.DateTime(timezone=True)),
    sa.Column("alert", sa.Text, nullable=False),  # the alert as JSON (subject, text, findings)
)
sa.Index("outbox_pending", alert_outbox.c.warehouse, alert_outbox.c.status, alert_outbox.c.created_at)

coverage_snapshots = sa.Table(
    "coverage_snapshots",
    metadata,
    sa.Column("snapshot_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("warehouse", sa.String(400), nullable=False),
    sa.Column("taken_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),  # check | run
    sa.Column("source_id", sa.String(40), nullable=False),
    sa.Column("game_date", sa.Date, nullable=False),
    sa.Column("stage", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("covered", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("expected_pct", sa.Float),
)
sa.Index(
    "snapshots_by_date",
    coverage_snapshots.c.warehouse,
    coverage_snapshots.c.game_date,
    coverage_snapshots.c.stage,
    coverage_snapshots.c.taken_at,
)
