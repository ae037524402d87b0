"""Leases: which run may write a (warehouse, stage, date) now.

A lease is a row whose primary key is (warehouse, stage, date), so two runs can never hold the same
one: of two processes inserting it at the same moment, one gets a unique-key violation and looks
again. A lease lasts as long as its run is alive (:meth:`Ledger.is_alive`); a dead holder's run is
interrupted and its leases released when someone else asks for them. The writer calls
:func:`check` immediately before each write, which also refreshes its heartbeat in the same
transaction, so a holder that paused long enough to be declared dead learns it before writing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import TYPE_CHECKING

import sqlalchemy as sa

from backfill.errors import BackfillError
from backfill.ledger.records import run_from_row
from backfill.ledger.status import RunStatus, run_status
from backfill.ledger.tables import leases, runs

if TYPE_CHECKING:
    from backfill.ledger.core import Ledger

ACQUIRE_ATTEMPTS = 5
"""Looks at the leases when another process inserts one of them at the same moment."""


class LeaseConflict(BackfillError):
    """Another live run holds some of the (stage, date) pairs a run wants to write."""

    def __init__(self, held: list[tuple[str, str, str, str]]):
        self.held = held  # (stage, date, run_id, created_by)
        stage, day, run_id, who = held[0]
        more = f" and {len(held) - 1} more" if len(held) > 1 else ""
        super().__init__(
            f"{stage} {day}{more} held by run {run_id} (started by {who}); try again when it ends"
        )


class LeaseLost(BackfillError):
    """This process no longer holds what it is about to write: stop without writing."""


def acquire(ledger: Ledger, run_id: str, pairs: Iterable[tuple[str, dt.date]]) -> None:
    """Take every (stage, date) of the run's warehouse for the run, or none (LeaseConflict)."""
    wanted = {(stage, day.isoformat()) for stage, day in pairs}
    for _ in range(ACQUIRE_ATTEMPTS):
        try:
            conflict = _acquire_once(ledger, run_id, wanted)
        except sa.exc.DBAPIError as exc:
            if _raced(exc):
                continue  # another run took one of these leases meanwhile: look again
            raise
        if conflict is not None:
            raise conflict
        return
    raise BackfillError(f"run {run_id}: the leases kept changing under it; try again")


RACE_SQLSTATES = frozenset({"23505", "40001", "40P01"})
"""PostgreSQL's unique violation, serialization failure and deadlock: a race with another run, not a fault."""


def _raced(exc: sa.exc.DBAPIError) -> bool:
    return isinstance(exc, sa.exc.IntegrityError) or getattr(exc.orig, "sqlstate", None) in RACE_SQLSTATES


def _acquire_once(ledger: Ledger, run_id: str, wanted: set[tuple[str, str]]) -> LeaseConflict | None:
    """One transaction; dead holders are interrupted (and that is kept) even when live ones conflict."""
    with ledger._begin(write=True) as connection:
        warehouse = _held_warehouse(ledger, connection, run_id)
        found = connection.execute(
            sa.select(leases.c.stage, leases.c.game_date, leases.c.run_id)
            .where(
                leases.c.warehouse == warehouse,
                leases.c.stage.in_(sorted({stage for stage, _ in wanted})),
                leases.c.game_date.in_(sorted({day for _, day in wanted})),
            )
            .with_for_update()
        ).all()
        held = [(stage, day, holder) for stage, day, holder in found if (stage, day) in wanted]
        others = {holder for _, _, holder in held if holder != run_id}
        holders = [
            run_from_row(row) for row in connection.execute(sa.select(runs).where(runs.c.run_id.in_(others)))
        ]
        dead = {r.run_id for r in ledger._interrupt_dead(connection, holders)}
        by_id = {r.run_id: r for r in holders}
        live = sorted(
            (stage, day, holder, by_id[holder].created_by)
            for stage, day, holder in held
            if holder in others and holder not in dead
        )
        if live:
            return LeaseConflict(live)
        mine = {(stage, day) for stage, day, holder in held if holder == run_id}
        new = [
            {
                "warehouse": warehouse,
                "stage": stage,
                "game_date": day,
                "run_id": run_id,
                "acquired_at": ledger._now(),
            }
            for stage, day in sorted(wanted - mine)
        ]
        if new:
            connection.execute(leases.insert(), new)
    return None


def check(ledger: Ledger, run_id: str, stage: str, dates: Iterable[dt.date]) -> None:
    """Raise LeaseLost unless this process holds the run and its leases of ``dates``; beats if it does."""
    days = sorted({day.isoformat() for day in dates})
    with ledger._begin(write=True) as connection:
        warehouse = _held_warehouse(ledger, connection, run_id)
        ledger._beat(connection, run_id)
        # The leases of these dates whoever holds them: looked up by their key (asking for this run's
        # alone, SQLite went through every lease of the run, for each batch of a long run).
        holders = dict(
            connection.execute(
                sa.select(leases.c.game_date, leases.c.run_id).where(
                    leases.c.warehouse == warehouse,
                    leases.c.stage == stage,
                    leases.c.game_date.in_(days),
                )
            ).all()
        )
        missing = [day for day in days if holders.get(day) != run_id]
        holder = holders.get(missing[0]) if missing else None
    if missing:
        now = f"held by run {holder}" if holder else "not held"
        raise LeaseLost(f"run {run_id} no longer holds {stage} {missing[0]} ({now}); stopping before writing")


def _held_warehouse(ledger: Ledger, connection: sa.Connection, run_id: str) -> str:
    """The run's warehouse, if the run is running in this process (its row locked for the
    transaction); else LeaseLost. Only the columns it needs are read: a run's parameters hold
    every date of it, and this is read before every write."""
    row = connection.execute(
        sa.select(runs.c.status, runs.c.host, runs.c.pid, runs.c.warehouse)
        .where(runs.c.run_id == run_id)
        .with_for_update()
    ).first()
    if row is None:
        raise BackfillError(f"no run {run_id!r} in the ledger")
    status, me = run_status(row.status), ledger.process()
    if status != RunStatus.RUNNING or (row.host, row.pid) != (me.host, me.pid):
        where = f"process {row.pid} on {row.host}" if row.pid is not None else "no process"
        raise LeaseLost(f"run {run_id} is {status} ({where}), not running in this process")
    return row.warehouse
