"""Schema versions of the ledger, as data: numbered steps that upgrade a ledger in place.

A new ledger is created at the latest version from :mod:`backfill.ledger.tables`. A ledger written
before versioning (a SQLite file with a ``runs`` table and no version table) is version 1. Each
step's statements are frozen text, so a later change to the tables never changes an old step.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from backfill.errors import BackfillError
from backfill.ledger.tables import metadata, schema_versions


@dataclass(frozen=True)
class Migration:
    """One numbered schema step: statements run in order, in the upgrade's transaction."""

    version: int
    description: str
    statements: tuple[str, ...]
    tables: tuple[str, ...] = ()
    """Tables of the ledger's metadata this step creates as defined there (after its statements)."""


FIRST = Migration(1, "the first ledger: runs, items, leases by (stage, date), events, actions", ())
"""Version 1 is what SQLite ledgers held before versioning; nothing to apply."""

MIGRATIONS: tuple[Migration, ...] = (
    FIRST,
    Migration(
        2,
        "leases keyed by (warehouse, stage, date); the holder process's start time",
        (
            "ALTER TABLE runs ADD COLUMN pid_started BIGINT",
            "ALTER TABLE leases RENAME TO leases_v1",
            "CREATE TABLE leases (warehouse TEXT NOT NULL, stage TEXT NOT NULL, game_date TEXT NOT NULL,"
            " run_id TEXT NOT NULL, acquired_at TEXT NOT NULL, PRIMARY KEY (warehouse, stage, game_date))",
            "INSERT INTO leases (warehouse, stage, game_date, run_id, acquired_at)"
            " SELECT r.warehouse, l.stage, l.game_date, l.run_id, l.acquired_at"
            " FROM leases_v1 AS l JOIN runs AS r ON r.run_id = l.run_id",
            "DROP TABLE leases_v1",
            "CREATE INDEX leases_by_run ON leases (run_id)",
        ),
    ),
    Migration(
        3,
        "items count the stale rows a stage's clean-up deleted after its job (clean_stale)",
        ("ALTER TABLE items ADD COLUMN stale_rows_deleted INTEGER",),
    ),
    Migration(
        4,
        "the watch: checks, their findings and alerts, coverage snapshots (backfill.history)",
        (),
        ("checks", "check_findings", "alerts", "coverage_snapshots"),
    ),
    Migration(
        5,
        "an outbox of alerts: each one pending until its channel accepted it (backfill.outbox)",
        (),
        ("alert_outbox",),
    ),
    Migration(
        6,
        "a launch's idempotency key (one per click): a repeated key records no second run",
        (
            "ALTER TABLE runs ADD COLUMN launch_key TEXT",
            "CREATE UNIQUE INDEX runs_by_launch_key ON runs (launch_key)",
        ),
    ),
)

LATEST = MIGRATIONS[-1].version

_UPGRADE_LOCK_KEY = 0x6C656467  # "ledg": PostgreSQL advisory lock held while a schema is upgraded


def current_version(connection: sa.Connection) -> int | None:
    """The ledger's schema version: None for an empty database, 1 for an unversioned ledger."""
    inspector = sa.inspect(connection)
    if inspector.has_table(schema_versions.name):
        return connection.execute(sa.select(sa.func.max(schema_versions.c.version))).scalar_one()
    return 1 if inspector.has_table("runs") else None


def upgrade(connection: sa.Connection, now: str) -> int | None:
    """Bring the schema to :data:`LATEST` in the caller's (write) transaction; returns the version found."""
    if connection.dialect.name == "postgresql":
        # SQLite's write transaction already excludes other writers; PostgreSQL needs a lock for DDL.
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_UPGRADE_LOCK_KEY)))
    found = current_version(connection)
    if found is None:
        metadata.create_all(connection)
        _stamp(connection, MIGRATIONS, now)
        return None
    if found > LATEST:
        raise BackfillError(
            f"the run ledger is at schema version {found}, newer than this code's {LATEST}; upgrade the code"
        )
    if not sa.inspect(connection).has_table(schema_versions.name):
        schema_versions.create(connection)
        _stamp(connection, [FIRST], now)
    pending = [step for step in MIGRATIONS if step.version > found]
    for step in pending:
        for statement in step.statements:
            connection.exec_driver_sql(statement)
        if step.tables:
            metadata.create_all(
                connection, tables=[metadata.tables[name] for name in step.tables], checkfirst=True
            )
    _stamp(connection, pending, now)
    return found


def _stamp(connection: sa.Connection, steps, now: str) -> None:
    rows = [{"version": s.version, "applied_at": now, "description": s.description} for s in steps]
    if rows:
        connection.execute(schema_versions.insert(), rows)
