"""A run as recorded: an immutable record read from the ``runs`` table."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

import sqlalchemy as sa

from backfill.errors import BackfillError
from backfill.ledger.holder import Holder
from backfill.ledger.status import RunStatus, run_status
from backfill.ledger.tables import runs


@dataclass(frozen=True)
class Run:
    """A run as recorded (immutable; re-read the ledger for fresh state)."""

    run_id: str
    kind: str
    created_at: str
    created_by: str
    status: RunStatus
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
    pid_started: int | None = None

    @property
    def holder(self) -> Holder | None:
        """The process that claimed the run, if one did."""
        return Holder(self.host, self.pid, self.pid_started) if self.pid is not None else None


_FIELDS = [f.name for f in fields(Run)]


def get_run(connection: sa.Connection, run_id: str) -> Run:
    row = connection.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
    if row is None:
        raise BackfillError(f"no run {run_id!r} in the ledger")
    return run_from_row(row)


def run_from_row(row: sa.Row) -> Run:
    values = {name: row._mapping[name] for name in _FIELDS}
    values["status"] = run_status(values["status"])
    values["params"] = json.loads(values["params"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    return Run(**values)
