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
