"""Where a ledger lives: a SQLite file (the default) or a PostgreSQL database, behind one engine.

``BACKFILL_LEDGER`` is a file path or ``postgresql://USER@HOST:PORT/DB``. An engine is made once
per location and process. A SQLite file is created on the first write, never by reading; reading a
file that does not exist reads an empty ledger. SQLite write transactions begin ``IMMEDIATE`` so
that two writers queue at the start instead of failing half-way.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event

from backfill.errors import BackfillError, BadInput
from backfill.ledger.tables import metadata
from backfill.writes import note_write

POSTGRESQL_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")

SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite writer waits for another writer's transaction to end."""

CONNECT_RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)
"""Seconds before each new try at connecting to a PostgreSQL ledger that does not answer: about 15 s
of outage are waited out (with each try's own connect timeout)."""

POSTGRESQL_CONNECT_TIMEOUT_S = 10
"""How long connecting to a PostgreSQL ledger may take before it is reported unreachable."""

_engines: dict[str, sa.Engine] = {}
_engines_guard = threading.Lock()


class LedgerUnavailable(BackfillError):
    """The ledger cannot be opened: an unreadable SQLite file, or an unreachable PostgreSQL server."""


def is_postgresql(location: str) -> bool:
    return location.strip().lower().startswith(POSTGRESQL_SCHEMES)  # schemes are case-insensitive


def postgresql_url(location: str) -> sa.URL:
    """The SQLAlchemy URL of a ``postgresql://`` ledger (psycopg 3); BadInput when malformed."""
    try:
        url = sa.make_url(location)
    except sa.exc.ArgumentError:
        url = None
    if url is None or not url.host or not url.database:
        raise BadInput(f"ledger {location!r} is not a postgresql://USER@HOST:PORT/DB URL")
    return url.set(drivername="postgresql+psycopg")


def describe(location: str) -> str:
    """The location for messages, without a password."""
    if is_postgresql(location):
        return postgresql_url(location).set(drivername="postgresql").render_as_string(hide_password=True)
    return location


def _key(location: str) -> str:
    return str(postgresql_url(location)) if is_postgresql(location) else str(Path(location).resolve())


def engine_for(location: str) -> sa.Engine:
    """The process's engine of a ledger location (made on first use)."""
    key = _key(location)
    with _engines_guard:
        if key not in _engines:
            _engines[key] = _postgresql_engine(location) if is_postgresql(location) else _sqlite_engine(key)
        return _engines[key]


def dispose(location: str) -> None:
    """Close this process's connections to a ledger (for example before its database is dropped)."""
    with _engines_guard:
        engine = _engines.pop(_key(location), None)
    if engine is not None:
        engine.dispose()


def empty_engine() -> sa.Engine:
    """An in-memory ledger with no runs: what reading a SQLite ledger that does not exist yet sees."""
    with _engines_guard:
        if ":empty:" not in _engines:
            engine = sa.create_engine(
                "sqlite://", poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False}
            )
            _begin_explicitly(engine)
            metadata.create_all(engine)
            _engines[":empty:"] = engine
        return _engines[":empty:"]


def _postgresql_engine(location: str) -> sa.Engine:
    return sa.create_engine(
        postgresql_url(location),
        pool_pre_ping=True,
        connect_args={"connect_timeout": POSTGRESQL_CONNECT_TIMEOUT_S},
    )


def _sqlite_engine(path: str) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection, _record) -> None:
        # Write-ahead log: readers (the console) never block the writer (a run), nor it them.
        _write_ahead_log(dbapi_connection)

    _begin_explicitly(engine)
    return engine


def _write_ahead_log(dbapi_connection) -> None:
    """Put the file in write-ahead-log mode. Turning a new file's journal into a log needs the file
    alone, and a process asking while another creates the ledger (two runs started together) is told
    "database is locked" at once, not after the busy timeout: it asks again until that timeout."""
    import sqlite3

    import tenacity

    asking = tenacity.Retrying(
        stop=tenacity.stop_after_delay(SQLITE_BUSY_TIMEOUT_S),
        wait=tenacity.wait_random(0.01, 0.1),
        retry=tenacity.retry_if_exception(
            lambda exc: isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)
        ),
        reraise=True,
    )
    asking(dbapi_connection.execute, "PRAGMA journal_mode=WAL")


def _begin_explicitly(engine: sa.Engine) -> None:
    """SQLite transactions begun by us (the driver's own are deferred): ``BEGIN IMMEDIATE`` to write."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin(connection: sa.Connection) -> None:
        write = connection.get_execution_options().get("ledger_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def connect(
    engine: sa.Engine, location: str, patient: bool = False, sleep: Callable[[float], None] = time.sleep
) -> sa.Connection:
    """A connection to the ledger. ``patient``: a PostgreSQL server that does not answer is asked
    again under the retry policy (a restart of a few seconds is a wait, not the end of a run), then
    LedgerUnavailable. A SQLite file that cannot be opened is not retried: it will not heal."""
    from backfill.retry import RetryPolicy

    delays = CONNECT_RETRY_DELAYS
    policy = RetryPolicy(max_attempts=len(delays) + 1, delays=delays, sleep=sleep)
    try:
        if patient and is_postgresql(location):
            return policy.call(engine.connect)[0]
        return engine.connect()
    except sa.exc.DBAPIError as exc:
        raise _unavailable(location, exc) from None


@contextlib.contextmanager
def transaction(
    engine: sa.Engine, location: str, write: bool, patient: bool = False
) -> Iterator[sa.Connection]:
    """One transaction: committed at the end of the block, rolled back if it raises."""
    connection = connect(engine, location, patient)
    try:
        connection.execution_options(ledger_write=write)
        with connection.begin():
            yield connection
    except sa.exc.DBAPIError as exc:
        if _broken(location, exc):
            raise _unavailable(location, exc) from None
        raise
    finally:
        connection.close()
    if write:
        note_write()


def _broken(location: str, exc: sa.exc.DBAPIError) -> bool:
    """Whether an error says the ledger itself is gone or damaged (not that a statement failed)."""
    if is_postgresql(location):
        return exc.connection_invalidated
    return any(sign in _reason(exc) for sign in ("not a database", "malformed", "unable to open", "disk I/O"))


def _unavailable(location: str, exc: sa.exc.DBAPIError) -> LedgerUnavailable:
    """One line: which ledger, what is wrong, what to do."""
    if is_postgresql(location):
        return LedgerUnavailable(
            f"cannot reach the run ledger {describe(location)} ({_reason(exc)}); "
            "check that the server is up and BACKFILL_LEDGER is right"
        )
    return LedgerUnavailable(
        f"run ledger {location} cannot be read as a SQLite database ({_reason(exc)}); move it aside "
        "(a new ledger starts with the next run) or restore it from a backup"
    )


def _reason(exc: sa.exc.DBAPIError) -> str:
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
