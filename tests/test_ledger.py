"""The run ledger on SQLite and on a real PostgreSQL server (SPEC 8.1): runs, items, leases,
heartbeats, guarded transitions, events, actions, and the upgrade of an old SQLite ledger."""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from backfill.errors import BackfillError, BadInput
from backfill.ledger import (
    HEARTBEAT_TIMEOUT_S,
    AlreadyLaunched,
    IllegalTransition,
    LeaseConflict,
    LeaseLost,
    Ledger,
    LedgerUnavailable,
    RunStatus,
    database,
)
from backfill.ledger.holder import Holder, this_process
from backfill.ledger.migrations import LATEST
from backfill.ledger.status import ITEM_OPEN

ROOT = Path(__file__).resolve().parent.parent
DEC_7, DEC_8, DEC_9 = dt.date(2021, 12, 7), dt.date(2021, 12, 8), dt.date(2021, 12, 9)
WAREHOUSE = "DuckDB file /data/warehouse.duckdb"
WORKER_7 = Holder("worker-7.example", 4242)
"""A process on another machine."""


class Clock:
    """A clock that moves only when told."""

    def __init__(self):
        self.now = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += dt.timedelta(seconds=seconds)


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request, tmp_path) -> str:
    """A new, empty ledger: a SQLite file path, or a database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "ledger.sqlite")
    return request.getfixturevalue("postgres_ledger")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(location, clock) -> Ledger:
    return Ledger(location, clock=clock)


def new_run(ledger: Ledger, who="alice", dates=(DEC_7, DEC_8), warehouse=WAREHOUSE, **options) -> str:
    items = [(stage, day) for day in dates for stage in ("mlfs", "predictions")]
    params = {"dates": [day.isoformat() for day in dates], "stages": ["mlfs", "predictions"]}
    return ledger.create_run(params=params, items=items, created_by=who, warehouse=warehouse, **options)


def running(ledger: Ledger, who="alice", dates=(DEC_7, DEC_8), **options) -> str:
    """A run started by the ledger's process, holding the leases of its items."""
    run_id = new_run(ledger, who, dates, **options)
    ledger.start_run(run_id)
    ledger.acquire_leases(run_id, [(stage, day) for day in dates for stage in ("mlfs", "predictions")])
    return run_id


# -- runs, items, events, actions ---------------------------------------------------------------


def test_a_run_is_recorded_queued_with_its_pending_items(ledger):
    first = new_run(ledger, "alice", run_id="20261130-090000-aaaaaa")
    second = new_run(ledger, "bob", dates=(DEC_9,), parent_run_id=first, run_id="20261130-090000-bbbbbb")
    run = ledger.get_run(first)
    assert (run.status, run.created_by, run.warehouse) == (RunStatus.QUEUED, "alice", WAREHOUSE)
    assert run.params == {"dates": ["2021-12-07", "2021-12-08"], "stages": ["mlfs", "predictions"]}
    assert [r.run_id for r in ledger.list_runs()] == [second, first]
    assert [r.run_id for r in ledger.list_runs(limit=1)] == [second]
    assert ledger.get_run(second).parent_run_id == first
    assert ledger.item_counts(first) == {"pending": 4}
    assert [(i["stage"], i["game_date"]) for i in ledger.items(second)] == [
        ("mlfs", "2021-12-09"),
        ("predictions", "2021-12-09"),
    ]


def test_an_unknown_run_is_a_one_line_error(ledger):
    with pytest.raises(BackfillError, match="no run 'nope' in the ledger"):
        ledger.get_run("nope")


def test_items_record_their_outcomes(ledger):
    run_id = running(ledger)
    ledger.update_items(run_id, "mlfs", [DEC_7, DEC_8], status="running", started_at="t0")
    ledger.record_items(
        run_id,
        "mlfs",
        {
            DEC_7: {"status": "done", "attempts": 1, "rows_written": 120, "coverage_after": 100.0},
            DEC_8: {
                "status": "failed",
                "attempts": 4,
                "error_class": "transient",
                "error_message": "timeout",
            },
        },
    )
    done, failed = ledger.items(run_id, ["done", "failed"])
    assert (done["game_date"], done["rows_written"], done["coverage_after"]) == ("2021-12-07", 120, 100.0)
    assert (failed["error_class"], failed["attempts"]) == ("transient", 4)
    assert ledger.item_counts(run_id) == {"done": 1, "failed": 1, "pending": 2}


def test_an_item_field_that_does_not_exist_is_refused(ledger):
    run_id = running(ledger)
    with pytest.raises(BackfillError, match="no settable field colour"):
        ledger.update_items(run_id, "mlfs", [DEC_7], colour="red")


def test_events_are_the_latest_lines_oldest_first(ledger, clock):
    run_id = new_run(ledger)
    for n in range(3):
        clock.advance(1)
        ledger.log(run_id, f"line {n}", "warning" if n == 2 else "info")
    assert [(e["message"], e["level"]) for e in ledger.events(run_id, limit=2)] == [
        ("line 1", "info"),
        ("line 2", "warning"),
    ]


def test_actions_are_recorded_with_who_and_details_newest_first(ledger):
    run_id = new_run(ledger)
    ledger.record_action("alice", "launch", {"dates": 2}, run_id)
    ledger.record_action("bob", "delete_stale", {"rows_by_category": {"mlfs.old_version": 3}})
    latest, first = ledger.actions()
    assert (latest["who"], latest["action"], latest["run_id"]) == ("bob", "delete_stale", None)
    assert latest["details"] == {"rows_by_category": {"mlfs.old_version": 3}}
    assert (first["who"], first["run_id"], first["details"]) == ("alice", run_id, {"dates": 2})


# -- guarded transitions -------------------------------------------------------------------------


def test_a_run_is_claimed_by_one_process_only(ledger):
    run_id = new_run(ledger)
    ledger.start_run(run_id)
    run = ledger.get_run(run_id)
    assert (run.status, run.pid, run.host) == (RunStatus.RUNNING, os.getpid(), socket.gethostname())
    with pytest.raises(IllegalTransition, match="not starting it again"):
        ledger.start_run(run_id)


def test_a_finished_run_cannot_run_again_nor_change_its_ending(ledger):
    run_id = running(ledger)
    ledger.finish_run(run_id, "succeeded", "4 done")
    with pytest.raises(IllegalTransition, match="is succeeded; not starting it again"):
        ledger.start_run(run_id)
    with pytest.raises(IllegalTransition, match="is succeeded; it cannot become failed"):
        ledger.finish_run(run_id, "failed")
    with pytest.raises(IllegalTransition, match="is succeeded; it cannot become queued"):
        ledger.requeue(run_id)
    with pytest.raises(IllegalTransition, match="not how a run ends"):
        ledger.finish_run(run_id, "running")
    with pytest.raises(IllegalTransition, match="'nearly' is not a run status"):
        ledger.finish_run(run_id, "nearly")
    assert (ledger.get_run(run_id).status, ledger.get_run(run_id).message) == ("succeeded", "4 done")


def test_a_queued_run_cannot_succeed_without_running(ledger):
    run_id = new_run(ledger)
    with pytest.raises(IllegalTransition, match="is queued; it cannot become succeeded"):
        ledger.finish_run(run_id, "succeeded")
    ledger.finish_run(run_id, "failed", "its worker could not start")  # failing before running is legal


def test_only_the_process_running_a_run_can_end_it(location, clock):
    elsewhere = Ledger(location, clock=clock, process=lambda: WORKER_7)
    run_id = running(elsewhere)
    with pytest.raises(IllegalTransition, match="running in process 4242 on worker-7.example, not this one"):
        Ledger(location, clock=clock).finish_run(run_id, "cancelled")
    elsewhere.finish_run(run_id, "cancelled")


def test_a_finished_item_is_not_redone_in_the_same_run(ledger):
    run_id = running(ledger)
    ledger.update_items(run_id, "mlfs", [DEC_7], status="done")
    with pytest.raises(IllegalTransition, match="2021-12-07 is done; cannot become running"):
        ledger.update_items(run_id, "mlfs", [DEC_7, DEC_8], status="running")
    assert ledger.item_counts(run_id) == {"done": 1, "pending": 3}  # all or nothing
    with pytest.raises(IllegalTransition, match="'finished' is not an item status"):
        ledger.update_items(run_id, "mlfs", [DEC_8], status="finished")


def test_a_foreground_run_killed_before_it_started_is_interrupted_at_once(location, clock):
    gone = Holder(socket.gethostname(), _dead_pid())
    crashed = Ledger(location, clock=clock, process=lambda: gone)
    run_id = new_run(crashed, held_here=True)  # recorded by the process that was to run it
    ledger = Ledger(location, clock=clock)
    assert ledger.get_run(run_id).status == RunStatus.QUEUED
    assert ledger.detect_interrupted() == [run_id]  # not "its worker is starting" for a minute
    # A run queued for a worker that has not started yet stays queued meanwhile.
    waiting = new_run(ledger, dates=(DEC_8,))
    assert ledger.detect_interrupted() == [] and ledger.get_run(waiting).status == RunStatus.QUEUED


def test_an_interrupted_run_is_requeued_or_resumed(location, clock):
    gone = Holder(socket.gethostname(), _dead_pid())
    crashed = Ledger(location, clock=clock, process=lambda: gone)
    run_id = running(crashed)
    ledger = Ledger(location, clock=clock)
    assert ledger.detect_interrupted() == [run_id]
    assert ledger.get_run(run_id).status == RunStatus.INTERRUPTED
    ledger.requeue(run_id)
    assert (ledger.get_run(run_id).status, ledger.get_run(run_id).pid) == (RunStatus.QUEUED, None)
    ledger.start_run(run_id)
    assert ledger.get_run(run_id).pid == os.getpid()


def test_cancel_is_asked_of_an_active_run_only(ledger):
    run_id = running(ledger)
    assert not ledger.cancel_requested(run_id)
    ledger.request_cancel(run_id)
    assert ledger.cancel_requested(run_id)
    ledger.finish_run(run_id, "cancelled")
    with pytest.raises(IllegalTransition, match="is cancelled; only queued or running runs can be cancelled"):
        ledger.request_cancel(run_id)


# -- leases --------------------------------------------------------------------------------------


def test_a_second_run_is_refused_naming_the_holder_and_takes_nothing(ledger):
    holder = running(ledger, "alice", dates=(DEC_7,))
    second = new_run(ledger, "bob", dates=(DEC_7, DEC_9))
    ledger.start_run(second)
    with pytest.raises(
        LeaseConflict, match=f"mlfs 2021-12-07 and 1 more held by run {holder} \\(started by alice\\)"
    ):
        ledger.acquire_leases(second, [("mlfs", DEC_7), ("predictions", DEC_7), ("mlfs", DEC_9)])
    with pytest.raises(LeaseLost, match="no longer holds mlfs 2021-12-09 \\(not held\\)"):
        ledger.check_lease(second, "mlfs", [DEC_9])  # all or none: DEC_9 was not taken either
    ledger.finish_run(holder, "succeeded")
    ledger.acquire_leases(second, [("mlfs", DEC_7), ("mlfs", DEC_9)])
    ledger.check_lease(second, "mlfs", [DEC_7, DEC_9])


def test_leases_are_per_warehouse(ledger):
    running(ledger, "alice", dates=(DEC_7,), warehouse="BigQuery project nba-prod")
    running(ledger, "bob", dates=(DEC_7,), warehouse="DuckDB file /tmp/copy.duckdb")


def test_a_paused_run_on_this_host_keeps_its_leases(ledger, clock):
    # A process stopped for minutes (SIGSTOP, a debugger, swapping) sends no heartbeat but is alive.
    holder = running(ledger, "alice", dates=(DEC_7,))
    clock.advance(10 * HEARTBEAT_TIMEOUT_S)
    second = new_run(ledger, "bob", dates=(DEC_7,))
    ledger.start_run(second)
    with pytest.raises(LeaseConflict, match=f"held by run {holder}"):
        ledger.acquire_leases(second, [("mlfs", DEC_7)])
    assert ledger.detect_interrupted() == []
    assert ledger.get_run(holder).status == RunStatus.RUNNING
    ledger.check_lease(holder, "mlfs", [DEC_7])


def test_a_dead_process_on_this_host_loses_its_leases_at_once(location, clock):
    gone = Holder(socket.gethostname(), _dead_pid())
    crashed = Ledger(location, clock=clock, process=lambda: gone)
    holder = running(crashed, dates=(DEC_7,))
    ledger = Ledger(location, clock=clock)
    second = running(ledger, "bob", dates=(DEC_7,))  # no heartbeat timeout needed
    assert ledger.get_run(holder).status == RunStatus.INTERRUPTED
    ledger.check_lease(second, "mlfs", [DEC_7])


def test_a_reused_pid_is_not_the_holder(location, clock):
    me = this_process()
    impostor = Ledger(location, clock=clock, process=lambda: Holder(me.host, me.pid, (me.started or 0) + 1))
    holder = running(impostor, dates=(DEC_7,))
    running(Ledger(location, clock=clock), "bob", dates=(DEC_7,))
    assert Ledger(location).get_run(holder).status == RunStatus.INTERRUPTED


def test_a_run_on_another_machine_holds_its_leases_while_its_heartbeat_goes_on(location, clock):
    remote = Ledger(location, clock=clock, process=lambda: WORKER_7)
    holder = running(remote, dates=(DEC_7,))
    ledger = Ledger(location, clock=clock)
    second = new_run(ledger, "bob", dates=(DEC_7,))
    ledger.start_run(second)
    for _ in range(3):
        clock.advance(0.8 * HEARTBEAT_TIMEOUT_S)
        assert remote.heartbeat(holder, statements=5)
        with pytest.raises(LeaseConflict, match=f"held by run {holder}"):
            ledger.acquire_leases(second, [("mlfs", DEC_7)])
    assert ledger.get_run(holder).statements == 5


def test_a_run_on_another_machine_whose_heartbeat_stopped_loses_its_leases_and_learns_it(location, clock):
    remote = Ledger(location, clock=clock, process=lambda: WORKER_7)
    holder = running(remote, dates=(DEC_7,))
    ledger = Ledger(location, clock=clock)
    second = new_run(ledger, "bob", dates=(DEC_7,))
    ledger.start_run(second)
    clock.advance(HEARTBEAT_TIMEOUT_S + 1)
    ledger.acquire_leases(second, [("mlfs", DEC_7)])
    assert ledger.get_run(holder).status == RunStatus.INTERRUPTED
    # The remote process wakes up: its re-check before writing stops it, and its heartbeat revives nothing.
    with pytest.raises(LeaseLost, match=f"run {holder} is interrupted"):
        remote.check_lease(holder, "mlfs", [DEC_7])
    assert not remote.heartbeat(holder)
    assert ledger.get_run(holder).status == RunStatus.INTERRUPTED


def test_the_lease_check_before_a_write_names_the_new_holder(location, clock):
    remote = Ledger(location, clock=clock, process=lambda: WORKER_7)
    holder = running(remote, dates=(DEC_7,))
    clock.advance(HEARTBEAT_TIMEOUT_S + 1)
    ledger = Ledger(location, clock=clock)
    assert ledger.detect_interrupted() == [holder]
    remote.start_run(holder)  # resumed on the remote machine, but it did not take the lease back yet
    second = running(ledger, "bob", dates=(DEC_7,))
    with pytest.raises(LeaseLost, match=f"no longer holds mlfs 2021-12-07 \\(held by run {second}\\)"):
        remote.check_lease(holder, "mlfs", [DEC_7])


def test_finishing_a_run_releases_its_leases(ledger):
    holder = running(ledger, dates=(DEC_7,))
    ledger.finish_run(holder, "failed", "boom")
    with pytest.raises(LeaseLost, match="is failed"):
        ledger.check_lease(holder, "mlfs", [DEC_7])
    running(ledger, "bob", dates=(DEC_7,))


def test_of_many_runs_racing_for_the_same_dates_exactly_one_gets_them(location):
    contenders = 6
    ledgers = [Ledger(location) for _ in range(contenders)]
    run_ids = [new_run(ledger, f"user{n}", dates=(DEC_7, DEC_8)) for n, ledger in enumerate(ledgers)]
    for ledger, run_id in zip(ledgers, run_ids):
        ledger.start_run(run_id)
    barrier = threading.Barrier(contenders)
    outcomes: dict[str, BaseException | None] = {}

    def contend(ledger: Ledger, run_id: str) -> None:
        barrier.wait(timeout=30)
        try:
            ledger.acquire_leases(run_id, [("mlfs", DEC_7), ("mlfs", DEC_8), ("predictions", DEC_8)])
            outcomes[run_id] = None
        except LeaseConflict as conflict:
            outcomes[run_id] = conflict

    threads = [threading.Thread(target=contend, args=pair) for pair in zip(ledgers, run_ids)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    (winner,) = [run_id for run_id, outcome in outcomes.items() if outcome is None]
    assert len(outcomes) == contenders
    for run_id, outcome in outcomes.items():
        if run_id != winner:
            assert f"held by run {winner}" in str(outcome)


def test_a_lease_taken_between_a_look_and_an_insert_is_seen_on_the_second_look(postgres_ledger):
    # SQLite cannot interleave like this (a writer holds the whole file); PostgreSQL relies on the key.
    first, second = Ledger(postgres_ledger), Ledger(postgres_ledger)
    slow, fast = new_run(first, "alice", dates=(DEC_7,)), new_run(second, "bob", dates=(DEC_7,))
    first.start_run(slow)
    second.start_run(fast)
    looked, may_insert = threading.Event(), threading.Event()
    look = first._interrupt_dead  # called after the look at the leases, before the insert

    def look_then_wait(connection, candidates):
        if not looked.is_set():
            looked.set()
            assert may_insert.wait(timeout=30)
        return look(connection, candidates)

    first._interrupt_dead = look_then_wait
    outcome: list[BaseException | None] = []

    def acquire() -> None:
        try:
            first.acquire_leases(slow, [("mlfs", DEC_7)])
            outcome.append(None)
        except LeaseConflict as conflict:
            outcome.append(conflict)

    thread = threading.Thread(target=acquire)
    thread.start()
    assert looked.wait(timeout=30)
    second.acquire_leases(fast, [("mlfs", DEC_7)])  # while the first one waits between look and insert
    may_insert.set()
    thread.join(timeout=60)
    (conflict,) = outcome
    assert isinstance(conflict, LeaseConflict) and f"held by run {fast}" in str(conflict)
    second.check_lease(fast, "mlfs", [DEC_7])


def test_active_runs_on_a_warehouse(ledger):
    live = running(ledger, dates=(DEC_7,))
    new_run(ledger, "bob", warehouse="BigQuery project nba-prod")
    finished = running(ledger, "carol", dates=(DEC_9,))
    ledger.finish_run(finished, "succeeded")
    assert [run.run_id for run in ledger.active_runs_on(WAREHOUSE)] == [live]


# -- where the ledger lives ----------------------------------------------------------------------


def test_reading_a_ledger_that_does_not_exist_creates_nothing(tmp_path):
    path = tmp_path / "nowhere" / "ledger.sqlite"
    ledger = Ledger(path)
    assert not ledger.exists()
    assert ledger.list_runs() == [] and ledger.actions() == [] and ledger.items("x") == []
    with pytest.raises(BackfillError, match="no run"):
        ledger.get_run("x")
    assert not path.parent.exists()
    new_run(ledger)  # the first write creates it
    assert path.is_file() and len(ledger.list_runs()) == 1


@pytest.mark.parametrize("url", ["postgresql://", "postgresql://host-only", "postgresql://user@:5432/"])
def test_a_malformed_postgresql_url_is_bad_input(url):
    with pytest.raises(BadInput, match="is not a postgresql://USER@HOST:PORT/DB URL"):
        Ledger(url)


def test_a_truncated_sqlite_ledger_is_a_one_line_error_naming_the_file(tmp_path):
    path = tmp_path / "ledger.sqlite"
    ledger = Ledger(path)
    for _ in range(20):
        new_run(ledger)
    database.dispose(str(path))  # as a new process finds it: no open connection, no write-ahead log
    assert not Path(f"{path}-wal").exists()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LedgerUnavailable) as error:
        Ledger(path).list_runs()
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"run ledger {path} cannot be read as a SQLite database")
    assert "move it aside" in message
    # What the message says to do works: moved aside, a new ledger starts with the next run.
    path.rename(tmp_path / "ledger.sqlite.broken")
    run_id = new_run(Ledger(path))
    assert [run.run_id for run in Ledger(path).list_runs()] == [run_id]


def test_an_unreachable_postgresql_ledger_is_a_one_line_error():
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(LedgerUnavailable) as error:
        Ledger(f"postgresql://team:secret@127.0.0.1:{port}/ledger").list_runs()
    message = str(error.value)
    assert message.startswith(f"cannot reach the run ledger postgresql://team:***@127.0.0.1:{port}/ledger (")
    assert "\n" not in message and "secret" not in message


# -- schema versions -----------------------------------------------------------------------------

MAIN_SCHEMA = """
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
"""The ledger's schema on main before versioning (backfill/ledger.py at e016b36), verbatim."""


def old_ledger(path: Path) -> None:
    """A ledger as main wrote it: a running run holding a lease, a finished run, an event, an action."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.executescript(MAIN_SCHEMA)
    run = "INSERT INTO runs (run_id, created_at, created_by, status, params, warehouse, host, pid, heartbeat_at)"
    connection.execute(
        run + " VALUES ('old-1', '2026-11-27T10:00:00.000+00:00', 'alice', 'succeeded',"
        " '{\"dates\": [\"2021-12-07\"]}', 'DuckDB file data/warehouse.duckdb', NULL, NULL, NULL)"
    )
    connection.execute(
        run + " VALUES ('old-2', '2026-11-28T10:00:00.000+00:00', 'bob', 'running', '{}',"
        " 'DuckDB file data/warehouse.duckdb', ?, ?, '2026-11-28T10:00:01.000+00:00')",
        (socket.gethostname(), os.getpid()),
    )
    connection.execute(
        "INSERT INTO items (run_id, stage, game_date, status, attempts, rows_written)"
        " VALUES ('old-1', 'predictions', '2021-12-07', 'done', 1, 240)"
    )
    connection.execute(
        "INSERT INTO leases VALUES ('mlfs', '2021-12-09', 'old-2', '2026-11-28T10:00:01.000+00:00')"
    )
    connection.execute(
        "INSERT INTO events (run_id, at, level, message) VALUES ('old-1', 'x', 'info', 'hello')"
    )
    connection.execute(
        "INSERT INTO actions (at, who, action, run_id, details) VALUES ('x', 'alice', 'launch', 'old-1', '{}')"
    )
    connection.commit()
    connection.close()


def test_a_ledger_from_before_versioning_is_upgraded_in_place(tmp_path):
    path = tmp_path / "ledger.sqlite"
    old_ledger(path)
    ledger = Ledger(path)
    old = ledger.get_run("old-1")
    assert (old.status, old.created_by, old.params) == (
        RunStatus.SUCCEEDED,
        "alice",
        {"dates": ["2021-12-07"]},
    )
    assert [run.run_id for run in ledger.list_runs()] == ["old-2", "old-1"]
    assert ledger.items("old-1")[0]["rows_written"] == 240
    assert ledger.events("old-1")[0]["message"] == "hello"
    assert ledger.actions()[0]["action"] == "launch"
    # The running run's lease survived, now keyed by its warehouse: another run is refused.
    second = ledger.create_run(
        params={}, items=[("mlfs", DEC_9)], created_by="carol", warehouse="DuckDB file data/warehouse.duckdb"
    )
    ledger.start_run(second)
    with pytest.raises(LeaseConflict, match="mlfs 2021-12-09 held by run old-2 \\(started by bob\\)"):
        ledger.acquire_leases(second, [("mlfs", DEC_9)])
    with sqlite3.connect(path) as connection:
        versions = connection.execute(
            "SELECT version FROM ledger_schema_versions ORDER BY version"
        ).fetchall()
    assert versions == [(v,) for v in range(1, LATEST + 1)]


def test_a_new_ledger_starts_at_the_latest_version_and_reopens_without_upgrading(location):
    import sqlalchemy as sa

    Ledger(location).record_action("alice", "launch", {})
    Ledger(location).record_action("bob", "launch", {})
    with database.engine_for(location).connect() as connection:
        versions = connection.execute(sa.text("SELECT version FROM ledger_schema_versions")).scalars().all()
    assert sorted(versions) == list(range(1, LATEST + 1))


def test_a_ledger_newer_than_the_code_is_refused(tmp_path):
    path = tmp_path / "ledger.sqlite"
    Ledger(path).record_action("alice", "launch", {})
    with sqlite3.connect(path) as connection:
        connection.execute("INSERT INTO ledger_schema_versions VALUES (99, 'x', 'from the future')")
    with pytest.raises(BackfillError, match="schema version 99, newer than this code's"):
        Ledger(path).list_runs()


# -- a paused process, for real ------------------------------------------------------------------

HOLD = """
import datetime as dt, sys
from backfill.ledger import Ledger
ledger, run_id = Ledger(sys.argv[1]), sys.argv[2]
ledger.start_run(run_id)
ledger.acquire_leases(run_id, [("mlfs", dt.date(2021, 12, 7))])
print("holding", flush=True)
sys.stdin.read()
"""


@pytest.mark.slow
def test_a_stopped_worker_keeps_its_leases_and_a_killed_one_loses_them(location, clock):
    ledger = Ledger(location, clock=clock)
    holder = new_run(ledger, dates=(DEC_7,))
    worker = subprocess.Popen(
        [sys.executable, "-c", HOLD, location, holder],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )
    try:
        assert worker.stdout.readline().strip() == "holding"
        worker.send_signal(signal.SIGSTOP)
        clock.now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=10 * HEARTBEAT_TIMEOUT_S)
        second = new_run(ledger, "bob", dates=(DEC_7,))
        ledger.start_run(second)
        with pytest.raises(LeaseConflict, match=f"held by run {holder}"):
            ledger.acquire_leases(second, [("mlfs", DEC_7)])
        worker.kill()
        worker.wait(timeout=30)
        ledger.acquire_leases(second, [("mlfs", DEC_7)])
        assert ledger.get_run(holder).status == RunStatus.INTERRUPTED
    finally:
        worker.kill()
        worker.wait(timeout=30)


def _dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait(timeout=30)
    return child.pid


# -- what a window costs the ledger ---------------------------------------------------------------


class SqliteWork:
    """SQLite's virtual-machine steps and the statements of a ledger's work: how much it read."""

    def __init__(self, path: str):
        import sqlalchemy as sa

        self.engine, self.steps, self.statements = database.engine_for(path), 0, []
        self._sa = sa

    def _count(self) -> int:
        self.steps += 1
        return 0

    def _before(self, connection, cursor, statement, parameters, context, executemany) -> None:
        self.statements.append(statement)
        connection.connection.dbapi_connection.set_progress_handler(self._count, 1)

    def __enter__(self) -> SqliteWork:
        self._sa.event.listen(self.engine, "before_cursor_execute", self._before)
        return self

    def __exit__(self, *exc) -> None:
        self._sa.event.remove(self.engine, "before_cursor_execute", self._before)


def test_a_windows_ledger_work_does_not_grow_with_the_run(tmp_path, clock):
    # A full backfill of 50 seasons has about 36,000 items and 50 windows: what a window asks of the
    # ledger (its open items, marking them running, the lease check before a write, recording the
    # outcomes, the cancel check) must read the window's items only, never the run's others, nor
    # its parameters (which hold every date).
    window = [DEC_7 + dt.timedelta(days=n) for n in range(31)]

    def window_work(run_days: int) -> SqliteWork:
        path = str(tmp_path / f"ledger-{run_days}.sqlite")
        ledger = Ledger(path, clock=clock)
        dates = [DEC_7 - dt.timedelta(days=n) for n in range(run_days - 31, 0, -1)] + window
        run_id = running(ledger, dates=dates)
        with SqliteWork(path) as work:
            open_items = ledger.items(
                run_id, ITEM_OPEN, between=(window[0], window[-1]), stages=("mlfs", "predictions")
            )
            ledger.update_items(run_id, "mlfs", window, status="running")
            ledger.check_lease(run_id, "mlfs", window)
            ledger.record_items(run_id, "mlfs", {day: {"status": "done", "attempts": 1} for day in window})
            ledger.cancel_requested(run_id)
        assert len(open_items) == 2 * len(window)
        return work

    small, large = window_work(62), window_work(62 * 20)
    assert large.steps < 1.25 * small.steps, (small.steps, large.steps)
    assert not any("params" in statement for statement in large.statements)


# -- a launch's idempotency key (issue 23) ---------------------------------------------------------


def test_a_repeated_launch_key_records_no_second_run_and_names_the_first(ledger, location):
    import sqlalchemy as sa

    first = new_run(ledger, launch_key="click-1")
    with pytest.raises(AlreadyLaunched, match=f"it is run {first}") as repeat:
        new_run(ledger, "bob", dates=(DEC_9,), launch_key="click-1")
    assert repeat.value.run_id == first
    other = new_run(ledger, launch_key="click-2")
    unkeyed = [new_run(ledger), new_run(ledger)]  # launches without a key are never refused
    with database.engine_for(location).connect() as connection:
        recorded = connection.execute(sa.text("SELECT run_id, launch_key FROM runs")).all()
        items_of_bob = connection.execute(
            sa.text("SELECT count(*) FROM items WHERE game_date = '2021-12-09'")
        )
        assert items_of_bob.scalar_one() == 0
    assert sorted(recorded) == sorted([(first, "click-1"), (other, "click-2"), *((r, None) for r in unkeyed)])
    assert ledger.launched_run("click-1") == first and ledger.launched_run("click-3") is None


def test_two_ledgers_launching_with_one_key_at_once_record_one_run(location):
    from concurrent.futures import ThreadPoolExecutor

    Ledger(location).ensure_schema()

    def launch(who: str) -> str:
        try:
            return new_run(Ledger(location), who, launch_key="same-click")
        except AlreadyLaunched as exc:
            return f"refused:{exc.run_id}"

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(launch, ["a", "b", "c", "d"]))
    launched = [outcome for outcome in outcomes if not outcome.startswith("refused:")]
    assert len(launched) == 1
    assert {outcome.removeprefix("refused:") for outcome in outcomes} == set(launched)
    assert len(Ledger(location).list_runs()) == 1
