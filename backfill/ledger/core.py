"""The run ledger: runs, their work items, leases, log lines and operator actions.

One implementation over SQLite (one machine) and PostgreSQL (a team): see
:mod:`backfill.ledger.database`. Any process can read a run's progress from it, which is how the
console follows a backfill that runs in another process or on another machine. State changes are
short transactions; every status change is a conditional UPDATE that only succeeds from a status
that may lead to it (:mod:`backfill.ledger.status`), so of two processes racing for a run or a
lease exactly one wins.

- ``runs``: who, when, parameters, status, the holder process and its heartbeat, statements issued.
- ``items``: one per (run, stage, date) with status, attempts, timings, rows written, coverage
  before/after, error class and message.
- ``leases``: which run may write a (warehouse, stage, date) now: see :mod:`backfill.ledger.leases`.
- ``events``: log lines of a run, newest last.
- ``actions``: every operator action (launch, cancel, rerun, stale-row deletion) and who did it.
"""

from __future__ import annotations

import contextlib
import copy as copy_module
import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from backfill.config import ledger_location
from backfill.errors import BackfillError
from backfill.ledger import database, migrations, tables
from backfill.ledger.holder import Holder, this_process
from backfill.ledger.items import guarded_update, guarded_updates
from backfill.ledger.leases import acquire, check
from backfill.ledger.records import Run, get_run, run_from_row
from backfill.ledger.status import (
    RUN_ACTIVE,
    IllegalTransition,
    RunStatus,
    run_sources,
    run_status,
)
from backfill.ledger.tables import actions, events, items, leases, runs

UTC = dt.UTC

HEARTBEAT_TIMEOUT_S = 60.0
"""A run on another machine whose heartbeat is older than this is interrupted (on this machine: its
process is gone). Machines sharing a PostgreSQL ledger need clocks synchronised well within this."""

INTERRUPTED_MESSAGE = "the run's process stopped before it finished; resume it to finish the rest"


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


def new_run_id(clock=now_utc) -> str:
    """Sortable, readable and unique: ``20211207-101500-ab12cd``."""
    return f"{clock():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"


class AlreadyLaunched(BackfillError):
    """A launch whose key is already recorded: the repeat of a click that launched ``run_id``."""

    def __init__(self, run_id: str):
        super().__init__(f"this launch was already made: it is run {run_id}")
        self.run_id = run_id


class Ledger:
    """Access to one ledger; cheap to create, safe to share between threads and processes."""

    def __init__(
        self,
        location: str | Path,
        clock: Callable[[], dt.datetime] = now_utc,
        heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S,
        process: Callable[[], Holder] = this_process,
    ):
        self.path = ledger_location(str(location))  # an unknown scheme is BadInput, before any file
        self.clock = clock
        self.process = process  # who "this process" is: injectable, so tests can be another machine
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.postgresql = database.is_postgresql(self.path)
        if self.postgresql:
            database.postgresql_url(self.path)  # a malformed URL is bad input, found now
        self._engine: sa.Engine | None = None  # the engine, once the schema is known to be current
        self.waits_out_outages = False
        """Whether a PostgreSQL server that does not answer is asked again for seconds (a run's
        ledger, :meth:`patient`) rather than reported at once (a page, a one-off command)."""

    def patient(self) -> Ledger:
        """This ledger for a long-running writer: an outage of seconds is a wait, not an end."""
        copy = copy_module.copy(self)
        copy.waits_out_outages = True
        return copy

    def __repr__(self) -> str:
        return f"Ledger({database.describe(self.path)!r})"

    def ensure_schema(self) -> None:
        """Create or upgrade the ledger's schema now (the first write would do it anyway)."""
        if self._engine is None:
            self._engine = self._upgraded_engine()

    def exists(self) -> bool:
        """Whether there is a ledger to read (a SQLite file is only created by the first write)."""
        return self.postgresql or Path(self.path).is_file()

    @contextlib.contextmanager
    def _begin(self, write: bool = False) -> Iterator[sa.Connection]:
        """One short transaction; the first one of this object creates or upgrades the schema."""
        if not self._engine:
            if not (write or self.exists()):
                with database.transaction(database.empty_engine(), ":empty:", write=False) as connection:
                    yield connection
                return
            self._engine = self._upgraded_engine()
        with database.transaction(
            self._engine, self.path, write, patient=self.waits_out_outages
        ) as connection:
            yield connection

    def _upgraded_engine(self) -> sa.Engine:
        """The ledger's engine, its schema created or upgraded to the latest version first."""
        if not self.postgresql:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        engine = database.engine_for(self.path)
        with database.transaction(engine, self.path, write=False) as connection:
            current = migrations.current_version(connection)
        if current != migrations.LATEST:
            with database.transaction(engine, self.path, write=True) as connection:
                migrations.upgrade(connection, self._now())
        return engine

    def _now(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds")

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
        launch_key: str | None = None,
        held_here: bool = False,
    ) -> str:
        """Record a queued run and its pending work items; returns its id.

        ``held_here``: this process runs it (a foreground run), so it is its holder from the start;
        killed before it starts, it is interrupted at once, not taken for a worker still starting.

        ``launch_key`` is the launch's idempotency key: a key already recorded raises
        :class:`AlreadyLaunched` naming its run, and nothing is recorded."""
        run_id = run_id or new_run_id(self.clock)
        work = [{"run_id": run_id, "stage": stage, "game_date": day.isoformat()} for stage, day in items]
        try:
            with self._begin(write=True) as connection:
                if launch_key is not None:
                    self._refuse_repeat(connection, launch_key)
                connection.execute(
                    runs.insert().values(
                        run_id=run_id,
                        kind=kind,
                        created_at=self._now(),
                        created_by=created_by,
                        status=RunStatus.QUEUED.value,
                        params=json.dumps(params, default=str),
                        warehouse=warehouse,
                        parent_run_id=parent_run_id,
                        launch_key=launch_key,
                        **(self._holder_values() if held_here else {}),
                    )
                )
                if work:
                    connection.execute(tables.items.insert().values(status="pending"), work)
        except sa.exc.IntegrityError:
            # Two launches with one key at the same moment (PostgreSQL): the unique index kept one.
            if launch_key is None or self.launched_run(launch_key) is None:
                raise
            with self._begin() as connection:
                self._refuse_repeat(connection, launch_key)
        return run_id

    def _holder_values(self) -> dict[str, Any]:
        me = self.process()
        return {"host": me.host, "pid": me.pid, "pid_started": me.started, "heartbeat_at": self._now()}

    @staticmethod
    def _refuse_repeat(connection: sa.Connection, launch_key: str) -> None:
        found = connection.execute(sa.select(runs.c.run_id).where(runs.c.launch_key == launch_key)).scalar()
        if found is not None:
            raise AlreadyLaunched(found)

    def launched_run(self, launch_key: str) -> str | None:
        """The run recorded for a launch key, if any."""
        if not self.exists():
            return None
        with self._begin() as connection:
            return connection.execute(
                sa.select(runs.c.run_id).where(runs.c.launch_key == launch_key)
            ).scalar()

    def record_params(self, run_id: str, **fields: Any) -> None:
        """Add fields to a run's recorded parameters (what the run decided once it started)."""
        with self._begin(write=True) as connection:
            current = connection.execute(sa.select(runs.c.params).where(runs.c.run_id == run_id)).scalar()
            params = json.loads(current or "{}") | fields
            connection.execute(
                runs.update().where(runs.c.run_id == run_id).values(params=json.dumps(params, default=str))
            )

    def get_run(self, run_id: str) -> Run:
        with self._begin() as connection:
            return get_run(connection, run_id)

    def list_runs(self, limit: int = 20, kind: str | None = "backfill") -> list[Run]:
        """The newest runs of a kind (backfills by default: a stale-row deletion's lease holder is
        a run of its own kind, recorded as an action too); every kind with ``kind=None``."""
        query = sa.select(runs).order_by(runs.c.created_at.desc(), runs.c.run_id.desc()).limit(limit)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        with self._begin() as connection:
            return [run_from_row(row) for row in connection.execute(query)]

    def list_active(self) -> list[Run]:
        with self._begin() as connection:
            return [run_from_row(row) for row in connection.execute(sa.select(runs).where(_active()))]

    def active_runs_on(self, warehouse: str) -> list[Run]:
        """Runs queued or running on a warehouse whose process is alive (after detecting the dead)."""
        self.detect_interrupted()
        return [run for run in self.list_active() if run.warehouse == warehouse]

    def start_run(self, run_id: str) -> None:
        """Claim a queued or interrupted run for this process; raises if another process has it.

        The claim is one conditional UPDATE, so of two processes starting the same run (a worker
        and a hand-typed resume) exactly one gets it.
        """
        me, now = self.process(), self._now()
        with self._begin(write=True) as connection:
            claimed = connection.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.status.in_(run_sources(RunStatus.RUNNING)))
                .values(
                    status=RunStatus.RUNNING.value,
                    host=me.host,
                    pid=me.pid,
                    pid_started=me.started,
                    started_at=sa.func.coalesce(runs.c.started_at, now),
                    heartbeat_at=now,
                    finished_at=None,
                    cancel_requested=0,
                )
            ).rowcount
        if not claimed:
            run = self.get_run(run_id)
            where = f" (process {run.pid} on {run.host})" if run.status == RunStatus.RUNNING else ""
            raise IllegalTransition(f"run {run_id} is {run.status}{where}; not starting it again")

    def requeue(self, run_id: str) -> None:
        """Queue an interrupted run again for a new worker process, which does only its unfinished items."""
        self._transition(
            run_id,
            RunStatus.QUEUED,
            host=None,
            pid=None,
            pid_started=None,
            heartbeat_at=self._now(),
            finished_at=None,
            cancel_requested=0,
            message=None,
        )

    def finish_run(self, run_id: str, status: str, message: str | None = None) -> None:
        """End a run (only its own process may end a running run) and release its leases."""
        target = run_status(status)
        if target in RUN_ACTIVE:
            raise IllegalTransition(f"{target} is not how a run ends")
        self._transition(run_id, target, finished_at=self._now(), message=message)

    def _transition(self, run_id: str, target: RunStatus, **values: Any) -> None:
        """Change a run's status if the transition is legal (and, from running, made by its holder)."""
        me = self.process()
        not_held_elsewhere = sa.or_(
            runs.c.status != RunStatus.RUNNING.value, sa.and_(runs.c.host == me.host, runs.c.pid == me.pid)
        )
        with self._begin(write=True) as connection:
            changed = connection.execute(
                runs.update()
                .where(runs.c.run_id == run_id, runs.c.status.in_(run_sources(target)), not_held_elsewhere)
                .values(status=target.value, **values)
            ).rowcount
            if changed and target not in RUN_ACTIVE:
                connection.execute(leases.delete().where(leases.c.run_id == run_id))
            if not changed:
                run = get_run(connection, run_id)
        if changed:
            return
        if run.status in run_sources(target):
            raise IllegalTransition(
                f"run {run_id} is running in process {run.pid} on {run.host}, not this one; "
                f"only that process can make it {target}"
            )
        raise IllegalTransition(f"run {run_id} is {run.status}; it cannot become {target}")

    def heartbeat(self, run_id: str, statements: int | None = None) -> bool:
        """Say this process still works on the run; False when it no longer holds it."""
        with self._begin(write=True) as connection:
            return bool(self._beat(connection, run_id, statements))

    def _beat(self, connection: sa.Connection, run_id: str, statements: int | None = None) -> int:
        me = self.process()
        return connection.execute(
            runs.update()
            .where(
                runs.c.run_id == run_id,
                runs.c.status == RunStatus.RUNNING.value,
                runs.c.host == me.host,
                runs.c.pid == me.pid,
            )
            .values(heartbeat_at=self._now(), statements=sa.func.coalesce(statements, runs.c.statements))
        ).rowcount

    def request_cancel(self, run_id: str) -> None:
        """Ask an active run to stop before its next batch."""
        with self._begin(write=True) as connection:
            asked = connection.execute(
                runs.update().where(runs.c.run_id == run_id, _active()).values(cancel_requested=1)
            ).rowcount
            if not asked:
                run = get_run(connection, run_id)
        if not asked:
            raise IllegalTransition(
                f"run {run_id} is {run.status}; only queued or running runs can be cancelled"
            )

    def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was asked (read alone: a run's parameters hold every date of it)."""
        with self._begin() as connection:
            asked = connection.execute(
                sa.select(runs.c.cancel_requested).where(runs.c.run_id == run_id)
            ).first()
        if asked is None:
            raise BackfillError(f"no run {run_id!r} in the ledger")
        return bool(asked.cancel_requested)

    def is_alive(self, run: Run) -> bool:
        """Whether an active run's process is still there.

        On this machine the process table decides: a process that is paused (stopped, swapping, in
        a debugger) is alive and keeps its leases, however old its heartbeat. On another machine
        only the heartbeat can tell, and it must be younger than ``heartbeat_timeout_s``.
        """
        if run.status not in RUN_ACTIVE:
            return False
        if run.status == RunStatus.QUEUED and run.pid is None:
            # Waiting for its worker since it was created, or requeued (heartbeat_at) for a resume.
            return self._age(run.heartbeat_at or run.created_at) < self.heartbeat_timeout_s
        if run.holder is not None and run.holder.host == self.process().host:
            return run.holder.alive()
        return run.heartbeat_at is not None and self._age(run.heartbeat_at) < self.heartbeat_timeout_s

    def _age(self, moment: str) -> float:
        return (self.clock() - dt.datetime.fromisoformat(moment)).total_seconds()

    def detect_interrupted(self) -> list[str]:
        """Mark active runs whose process is gone as interrupted (releasing their leases); returns their ids."""
        dead = [run for run in self.list_active() if not self.is_alive(run)]
        if not dead:  # the common case, every few seconds from every console: no write lock taken
            return []
        with self._begin(write=True) as connection:
            return [run.run_id for run in self._interrupt_dead(connection, dead)]

    def _interrupt_dead(self, connection: sa.Connection, candidates: Iterable[Run]) -> list[Run]:
        """Interrupt those of ``candidates`` that are dead, unless they changed since they were read."""
        interrupted = []
        for run in candidates:
            if self.is_alive(run):
                continue
            # Compare and set: a heartbeat or a claim since the read keeps the run alive.
            changed = connection.execute(
                runs.update()
                .where(
                    runs.c.run_id == run.run_id,
                    runs.c.status == run.status.value,
                    runs.c.pid.is_not_distinct_from(run.pid),
                    runs.c.heartbeat_at.is_not_distinct_from(run.heartbeat_at),
                )
                .values(status=RunStatus.INTERRUPTED.value, message=INTERRUPTED_MESSAGE)
            ).rowcount
            if changed:
                connection.execute(leases.delete().where(leases.c.run_id == run.run_id))
                interrupted.append(run)
        return interrupted

    # -- items ------------------------------------------------------------------------------

    def items(
        self,
        run_id: str,
        statuses: Iterable[str] | None = None,
        between: tuple[dt.date, dt.date] | None = None,
        stages: Iterable[str] | None = None,
    ) -> list[dict[str, Any]]:
        """The run's items (of these statuses, dated between these two dates, of these stages), in
        date and stage order: the order of ``stages`` when given, else the run's dependency order."""
        stages = None if stages is None else list(stages)
        query = sa.select(items).where(*_item_conditions(run_id, statuses, between, stages))
        with self._begin() as connection:
            rows = [dict(row._mapping) for row in connection.execute(query.order_by(items.c.game_date))]
            if stages is None:
                # The run's request lists its stages in dependency order; its parameters also hold
                # every date, so they are read only when the caller does not say.
                params = connection.execute(sa.select(runs.c.params).where(runs.c.run_id == run_id)).scalar()
                stages = json.loads(params).get("stages", []) if params else []
        order = {stage: index for index, stage in enumerate(stages)}
        return sorted(
            rows, key=lambda item: (item["game_date"], order.get(item["stage"], len(order)), item["stage"])
        )

    def item_keys(
        self,
        run_id: str,
        statuses: Iterable[str],
        between: tuple[dt.date, dt.date] | None = None,
        stages: Iterable[str] | None = None,
    ) -> list[tuple[str, dt.date]]:
        """(stage, date) of the run's items of these statuses (dated between these two dates, of these
        stages: then a range of the primary key), unordered: what a run needs to know of its
        unfinished work, without reading whole rows."""
        query = sa.select(items.c.stage, items.c.game_date).where(
            *_item_conditions(run_id, statuses, between, stages)
        )
        with self._begin() as connection:
            rows = connection.execute(query).all()
        return [(stage, dt.date.fromisoformat(day)) for stage, day in rows]

    def update_items(self, run_id: str, stage: str, dates: Iterable[dt.date], **values: Any) -> None:
        """Set the same fields on several items of a run (one transaction)."""
        days = sorted({day.isoformat() for day in dates})
        if not days:
            return
        with self._begin(write=True) as connection:
            guarded_update(connection, run_id, stage, days, values)

    def record_items(self, run_id: str, stage: str, outcomes: dict[dt.date, dict[str, Any]]) -> None:
        """Set per-item fields (outcome of a batch) in one transaction."""
        with self._begin(write=True) as connection:
            guarded_updates(
                connection, run_id, stage, {day.isoformat(): values for day, values in outcomes.items()}
            )

    def item_counts(self, run_id: str) -> dict[str, int]:
        query = (
            sa.select(items.c.status, sa.func.count())
            .where(items.c.run_id == run_id)
            .group_by(items.c.status)
        )
        with self._begin() as connection:
            return {status: count for status, count in connection.execute(query)}

    # -- leases -----------------------------------------------------------------------------

    def acquire_leases(self, run_id: str, pairs: Iterable[tuple[str, dt.date]]) -> None:
        """Take every (stage, date) of the run's warehouse for it, or none: LeaseConflict names the holder."""
        acquire(self, run_id, pairs)

    def check_lease(self, run_id: str, stage: str, dates: Iterable[dt.date]) -> None:
        """Call immediately before writing: raises LeaseLost unless this process still holds them all."""
        check(self, run_id, stage, dates)

    # -- events and actions -----------------------------------------------------------------

    def log(self, run_id: str, message: str, level: str = "info") -> None:
        with self._begin(write=True) as connection:
            connection.execute(
                events.insert().values(run_id=run_id, at=self._now(), level=level, message=message)
            )

    def log_many(self, run_id: str, messages: list[str], level: str = "info") -> None:
        """Several log lines in one transaction (a job's burst of output)."""
        if not messages:
            return
        at = self._now()
        with self._begin(write=True) as connection:
            connection.execute(
                events.insert(),
                [{"run_id": run_id, "at": at, "level": level, "message": message} for message in messages],
            )

    def events(self, run_id: str, limit: int = 50) -> list[dict[str, Any]]:
        latest = (
            sa.select(events).where(events.c.run_id == run_id).order_by(events.c.event_id.desc()).limit(limit)
        )
        with self._begin() as connection:
            rows = connection.execute(latest).all()
        return [dict(row._mapping) for row in reversed(rows)]

    def record_action(self, who: str, action: str, details: dict, run_id: str | None = None) -> None:
        with self._begin(write=True) as connection:
            connection.execute(
                actions.insert().values(
                    at=self._now(),
                    who=who,
                    action=action,
                    run_id=run_id,
                    details=json.dumps(details, default=str),
                )
            )

    def actions(self, limit: int = 100) -> list[dict[str, Any]]:
        query = sa.select(actions).order_by(actions.c.action_id.desc()).limit(limit)
        with self._begin() as connection:
            rows = connection.execute(query).all()
        return [dict(row._mapping) | {"details": json.loads(row.details)} for row in rows]


def _active():
    return runs.c.status.in_([str(status) for status in RUN_ACTIVE])


def _item_conditions(
    run_id: str,
    statuses: Iterable[str] | None,
    between: tuple[dt.date, dt.date] | None,
    stages: Iterable[str] | None,
) -> list[sa.ColumnElement[bool]]:
    """The WHERE of a run's items of these statuses, dated between these two dates, of these stages
    (None: any). With the run and its stages, a range of dates is a range of the primary key: a
    window's items are found without reading the run's other items."""
    conditions = [items.c.run_id == run_id]
    if stages is not None:
        conditions.append(items.c.stage.in_(list(stages)))
    if between is not None:
        conditions.append(items.c.game_date.between(between[0].isoformat(), between[1].isoformat()))
    if statuses is not None:
        conditions.append(items.c.status.in_([str(status) for status in statuses]))
    return conditions
