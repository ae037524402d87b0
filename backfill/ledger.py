"""The run ledger: a SQLite file recording runs, their work items, leases, log lines and actions.

Any process can read a run's progress from it, which is how the console follows a backfill that
runs in another process. Connections are short and the database is in WAL mode, so a reader never
blocks the writer. State changes are single statements or short ``BEGIN IMMEDIATE`` transactions.

- ``runs``: who, when, parameters, status, heartbeat, process id, statements issued.
- ``items``: one per (run, stage, date) with status, attempts, timings, rows written, coverage
  before/after, error class and message.
- ``leases``: which run may write a (stage, date) now; a second run is refused while it is held.
- ``events``: log lines of a run, newest last.
- ``actions``: every operator action (launch, cancel, rerun, stale-row deletion) and who did it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backfill.errors import BackfillError

UTC = dt.UTC

RUN_ACTIVE = ("queued", "running")
RUN_FINAL = ("succeeded", "blocked", "failed", "cancelled", "interrupted", "refused")
ITEM_OPEN = ("pending", "running")
"""Item statuses of unfinished work: a resume does these and nothing else."""
ITEM_FINAL = ("done", "skipped", "failed", "blocked", "cancelled")

HEARTBEAT_TIMEOUT_S = 60.0
"""A running run whose heartbeat is older than this (and whose process is gone) is interrupted."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY,
  kind TEXT NOT NULL DEFAULT 'backfill',
  created_at TEXT NOT NULL,
  created_by TEXT NOT NULL,
  status TEXT NOT NULL,
  params TEXT NOT NULL,
  warehouse TEXT NOT NULL,
  parent_run_id TEXT,
  host TEXT,
  pid INTEGER,
  started_at TEXT,
  heartbeat_at TEXT,
  finished_at TEXT,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  statements INTEGER NOT NULL DEFAULT 0,
  message TEXT
);
CREATE TABLE IF NOT EXISTS items (
  run_id TEXT NOT NULL REFERENCES runs(run_id),
  stage TEXT NOT NULL,
  game_date TEXT NOT NULL,
  status TEXT NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  started_at TEXT,
  finished_at TEXT,
  duration_s REAL,
  rows_written INTEGER,
  coverage_before REAL,
  coverage_after REAL,
  error_class TEXT,
  error_message TEXT,
  stale_rows_deleted INTEGER,
  PRIMARY KEY (run_id, stage, game_date)
);
CREATE TABLE IF NOT EXISTS leases (
  stage TEXT NOT NULL,
  game_date TEXT NOT NULL,
  run_id TEXT NOT NULL,
  acquired_at TEXT NOT NULL,
  PRIMARY KEY (stage, game_date)
);
CREATE TABLE IF NOT EXISTS events (
  event_id INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL,
  at TEXT NOT NULL,
  level TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS actions (
  action_id INTEGER PRIMARY KEY AUTOINCREMENT,
  at TEXT NOT NULL,
  who TEXT NOT NULL,
  action TEXT NOT NULL,
  run_id TEXT,
  details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS items_by_status ON items(run_id, status);
CREATE INDEX IF NOT EXISTS events_by_run ON events(run_id, event_id);
"""


class LeaseConflict(BackfillError):
    """Another active run holds some of the (stage, date) pairs a run wants to write."""

    def __init__(self, held: list[tuple[str, str, str, str]]):
        self.held = held  # (stage, date, run_id, created_by)
        stage, day, run_id, who = held[0]
        more = f" and {len(held) - 1} more" if len(held) > 1 else ""
        super().__init__(
            f"{stage} {day}{more} held by run {run_id} (started by {who}); try again when it ends"
        )


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def new_run_id(clock=now_utc) -> str:
    """Sortable, readable and unique: ``20211207-101500-ab12cd``."""
    return f"{clock():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Run:
    """A run as recorded (immutable; re-read the ledger for fresh state)."""

    run_id: str
    kind: str
    created_at: str
    created_by: str
    status: str
    params: dict
    warehouse: str
    parent_run_id: str | None
    host: str | None
    pid: int | None
    started_at: str | None
    heartbeat_at: str | None
    finished_at: str | None
    cancel_requested: bool
    statements: int
    message: str | None


class Ledger:
    """Access to one ledger file; cheap to create, safe to share between threads and processes."""

    def __init__(self, path: str | Path, clock=now_utc):
        self.path = str(path)
        self.clock = clock
        self._local = threading.local()
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.path, timeout=30.0)
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(SCHEMA)
            columns = {row[1] for row in connection.execute("PRAGMA table_info(items)")}
            if "stale_rows_deleted" not in columns:  # a ledger from before command processors
                connection.execute("ALTER TABLE items ADD COLUMN stale_rows_deleted INTEGER")
        finally:
            connection.close()

    @contextlib.contextmanager
    def _connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """One short transaction on this thread's connection (kept open: a run makes thousands)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            connection.row_factory = sqlite3.Row
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
        connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
        try:
            yield connection
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    def _now(self) -> str:
        return _iso(self.clock())

    # -- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        *,
        params: dict,
        items: Iterable[tuple[str, dt.date]],
        created_by: str,
        warehouse: str,
        kind: str = "backfill",
        parent_run_id: str | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a queued run and its pending work items; returns its id."""
        run_id = run_id or new_run_id(self.clock)
        now = self._now()
        with self._connect(immediate=True) as connection:
            connection.execute(
                "INSERT INTO runs (run_id, kind, created_at, created_by, status, params, warehouse, parent_run_id)"
                " VALUES (?, ?, ?, ?, 'queued', ?, ?, ?)",
                (run_id, kind, now, created_by, json.dumps(params, default=str), warehouse, parent_run_id),
            )
            connection.executemany(
                "INSERT INTO items (run_id, stage, game_date, status) VALUES (?, ?, ?, 'pending')",
                [(run_id, stage, day.isoformat()) for stage, day in items],
            )
        return run_id

    def get_run(self, run_id: str) -> Run:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise BackfillError(f"no run {run_id!r} in the ledger")
        return _run(row)

    def list_runs(self, limit: int = 20) -> list[Run]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM runs ORDER BY created_at DESC, run_id DESC LIMIT ?", (limit,)
            )
            return [_run(row) for row in rows.fetchall()]

    def start_run(self, run_id: str) -> None:
        """Claim a queued or interrupted run for this process; raises if another process has it.

        The claim is one conditional UPDATE, so of two processes starting the same run (a worker
        and a hand-typed resume) exactly one gets it.
        """
        now = self._now()
        with self._connect(immediate=True) as connection:
            claimed = connection.execute(
                "UPDATE runs SET status = 'running', host = ?, pid = ?, started_at = COALESCE(started_at, ?),"
                " heartbeat_at = ?, finished_at = NULL, cancel_requested = 0"
                " WHERE run_id = ? AND status IN ('queued', 'interrupted')",
                (socket.gethostname(), os.getpid(), now, now, run_id),
            ).rowcount
        if not claimed:
            run = self.get_run(run_id)
            raise BackfillError(
                f"run {run_id} is {run.status} (process {run.pid} on {run.host}); not starting it again"
            )

    def requeue(self, run_id: str) -> None:
        """Queue a stopped run again for a new worker process, which does only its unfinished items."""
        with self._connect(immediate=True) as connection:
            connection.execute(
                "UPDATE runs SET status = 'queued', host = NULL, pid = NULL, heartbeat_at = ?,"
                " finished_at = NULL, cancel_requested = 0, message = NULL WHERE run_id = ?",
                (self._now(), run_id),
            )

    def heartbeat(self, run_id: str, statements: int | None = None) -> None:
        with self._connect() as connection:
            connection.execute(
                "UPDATE runs SET heartbeat_at = ?, statements = COALESCE(?, statements) WHERE run_id = ?",
                (self._now(), statements, run_id),
            )

    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        with self._connect(immediate=True) as connection:
            connection.execute(
                "UPDATE runs SET status = ?, finished_at = ?, message = ? WHERE run_id = ?",
                (status, self._now(), message, run_id),
            )
            connection.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))

    def request_cancel(self, run_id: str) -> None:
        with self._connect() as connection:
            connection.execute("UPDATE runs SET cancel_requested = 1 WHERE run_id = ?", (run_id,))

    def cancel_requested(self, run_id: str) -> bool:
        return self.get_run(run_id).cancel_requested

    def add_statements(self, run_id: str, count: int) -> None:
        with self._connect() as connection:
            connection.execute(
                "UPDATE runs SET statements = statements + ? WHERE run_id = ?", (count, run_id)
            )

    def is_alive(self, run: Run, timeout_s: float = HEARTBEAT_TIMEOUT_S) -> bool:
        """Whether an active run's process is still there (same host: by pid; else by heartbeat)."""
        if run.status not in RUN_ACTIVE:
            return False
        if run.status == "queued" and run.pid is None:
            # Waiting for its worker since it was created, or requeued (heartbeat_at) for a resume.
            queued = dt.datetime.fromisoformat(run.heartbeat_at or run.created_at)
            return (self.clock() - queued).total_seconds() < timeout_s
        beat = dt.datetime.fromisoformat(run.heartbeat_at) if run.heartbeat_at else None
        fresh = beat is not None and (self.clock() - beat).total_seconds() < timeout_s
        if run.host == socket.gethostname() and run.pid is not None:
            # On this machine a dead process is seen at once; the heartbeat guards against pid reuse.
            return fresh and _pid_alive(run.pid)
        return fresh

    def detect_interrupted(self) -> list[str]:
        """Mark active runs whose process is gone as interrupted; returns their ids."""
        stale = [run for run in self.list_active() if not self.is_alive(run)]
        for run in stale:
            with self._connect(immediate=True) as connection:
                connection.execute(
                    "UPDATE runs SET status = 'interrupted', message = ? WHERE run_id = ? AND status IN ('queued', 'running')",
                    (
                        "the run's process stopped before it finished; resume it to finish the rest",
                        run.run_id,
                    ),
                )
                connection.execute("DELETE FROM leases WHERE run_id = ?", (run.run_id,))
        return [run.run_id for run in stale]

    def list_active(self) -> list[Run]:
        with self._connect() as connection:
            rows = connection.execute("SELECT * FROM runs WHERE status IN ('queued', 'running')").fetchall()
        return [_run(row) for row in rows]

    # -- leases -----------------------------------------------------------------------------

    def acquire_leases(self, run_id: str, pairs: Iterable[tuple[str, dt.date]]) -> None:
        """Take every (stage, date) for a run, or none: raises LeaseConflict naming the holder."""
        self.detect_interrupted()
        wanted = [(stage, day.isoformat()) for stage, day in pairs]
        now = self._now()
        with self._connect(immediate=True) as connection:
            held = []
            for stage, day in wanted:
                row = connection.execute(
                    "SELECT l.run_id, r.created_by FROM leases AS l JOIN runs AS r USING (run_id)"
                    " WHERE l.stage = ? AND l.game_date = ? AND l.run_id != ?",
                    (stage, day, run_id),
                ).fetchone()
                if row is not None:
                    held.append((stage, day, row["run_id"], row["created_by"]))
            if held:
                raise LeaseConflict(held)
            connection.executemany(
                "INSERT OR REPLACE INTO leases (stage, game_date, run_id, acquired_at) VALUES (?, ?, ?, ?)",
                [(stage, day, run_id, now) for stage, day in wanted],
            )

    # -- items ------------------------------------------------------------------------------

    def items(self, run_id: str, statuses: Iterable[str] | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM items WHERE run_id = ?"
        args: list[Any] = [run_id]
        if statuses is not None:
            statuses = list(statuses)
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            args += statuses
        with self._connect() as connection:
            rows = connection.execute(sql + " ORDER BY game_date, stage", args).fetchall()
            params = connection.execute("SELECT params FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        # Stages in the run's dependency order (its request lists them so), not alphabetically.
        order = (
            {stage: index for index, stage in enumerate(json.loads(params[0]).get("stages", []))}
            if params
            else {}
        )
        return sorted(
            (dict(row) for row in rows), key=lambda item: (item["game_date"], order.get(item["stage"], 99))
        )

    def update_items(self, run_id: str, stage: str, dates: Iterable[dt.date], **fields: Any) -> None:
        """Set the same fields on several items of a run (one transaction)."""
        columns = ", ".join(f"{name} = ?" for name in fields)
        with self._connect(immediate=True) as connection:
            connection.executemany(
                f"UPDATE items SET {columns} WHERE run_id = ? AND stage = ? AND game_date = ?",
                [(*fields.values(), run_id, stage, day.isoformat()) for day in dates],
            )

    def record_items(self, run_id: str, stage: str, outcomes: dict[dt.date, dict[str, Any]]) -> None:
        """Set per-item fields (outcome of a batch) in one transaction."""
        with self._connect(immediate=True) as connection:
            for day, fields in outcomes.items():
                columns = ", ".join(f"{name} = ?" for name in fields)
                connection.execute(
                    f"UPDATE items SET {columns} WHERE run_id = ? AND stage = ? AND game_date = ?",
                    (*fields.values(), run_id, stage, day.isoformat()),
                )

    def item_counts(self, run_id: str) -> dict[str, int]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT status, COUNT(*) AS n FROM items WHERE run_id = ? GROUP BY status", (run_id,)
            ).fetchall()
        return {row["status"]: row["n"] for row in rows}

    # -- events and actions -----------------------------------------------------------------

    def log(self, run_id: str, message: str, level: str = "info") -> None:
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO events (run_id, at, level, message) VALUES (?, ?, ?, ?)",
                (run_id, self._now(), level, message),
            )

    def events(self, run_id: str, limit: int = 50) -> list[dict[str, Any]]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM (SELECT * FROM events WHERE run_id = ? ORDER BY event_id DESC LIMIT ?)"
                " ORDER BY event_id",
                (run_id, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    def record_action(self, who: str, action: str, details: dict, run_id: str | None = None) -> None:
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO actions (at, who, action, run_id, details) VALUES (?, ?, ?, ?, ?)",
                (self._now(), who, action, run_id, json.dumps(details, default=str)),
            )

    def actions(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM actions ORDER BY action_id DESC LIMIT ?", (limit,)
            ).fetchall()
        return [dict(row) | {"details": json.loads(row["details"])} for row in rows]


def _run(row: sqlite3.Row) -> Run:
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Run(**values)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped by its parent) is not alive for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return True
