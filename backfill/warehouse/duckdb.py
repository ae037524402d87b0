"""The embedded warehouse: one DuckDB file, schemas standing in for BigQuery datasets.

DuckDB lets one process at a time open a file for writing, and a process that opens the file
starts with a cold buffer pool. So the adapter keeps the database open while it is in use and for a
short idle moment after (page reruns and a batch's statements then share warm pages), and closes it
after that so another process (the console, a CLI run, a detached backfill) can take its turn.
Opening waits out another process's lock for a while (``lock_wait_s``); beyond that the lock error
reaches the retry policy, which treats it as transient.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tenacity

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.faults import EngineErrors, is_lock_conflict
from backfill.warehouse.base import Column, Warehouse, dates_to_python
from backfill.warehouse.schema import TABLES, Table

if TYPE_CHECKING:  # duckdb and pandas load when the database is first opened
    import duckdb
    import pandas as pd

_DOLLAR_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")

log = logging.getLogger(__name__)

GOOGLESQL_TYPES = {
    "VARCHAR": "STRING",
    "DOUBLE": "FLOAT64",
    "BIGINT": "INT64",
    "BOOLEAN": "BOOL",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMP",
    "DATE": "DATE",
}
"""DuckDB's names of the column types the schema uses, as GoogleSQL names them."""

STAMP_SETTLED_S = 2.0
"""A file's stamp counts only once its last change is this old: file times advance in clock ticks,
so a write within a tick of the one before it could leave them as they were ("racy" stamps)."""

IDLE_CLOSE_S = 1.0
"""Seconds the database stays open after its last use, unless a session holds it."""

LOCK_WAIT_S = 30.0
"""How long opening waits for another process to release the file before giving up."""

WAITING_FRESH_S = 3.0
"""A reader's waiting mark (:meth:`DuckDBWarehouse.readers_waiting`) counts for this long after its
last failed attempt: the console tries for half a second every two."""

READER_TURN_S = 2.5
"""How long a writer that made way (:meth:`DuckDBWarehouse.make_way`) waits for the waiting reader
to take the file before it goes on."""

CHECKPOINT_THRESHOLD = "1GB"
"""Write-ahead log size at which a commit also checkpoints (DuckDB's default: 16 MiB). Closing the
file checkpoints too, and a writer closes it now and then (a backfill between windows, for a waiting
reader or every ``release_every_s``), so with DuckDB's default a backfill checkpointed about every
other season's window as well, and that cost more than its inserts (issue 13)."""


def _duckdb(*names: str) -> frozenset[str]:
    """DuckDB's exception classes live in ``_duckdb`` (re-exported by ``duckdb``); both spellings."""
    return frozenset(f"{module}.{name}" for name in names for module in ("_duckdb", "duckdb"))


DUCKDB_ERRORS = EngineErrors(
    engine="duckdb",
    label="DuckDB",
    permanent_types=_duckdb(
        "ParserException", "BinderException", "CatalogException", "ConversionException", "ConstraintException"
    ),
    # Another process holds the file (at open or at any statement), or a concurrent transaction of
    # this process wrote the same rows: both are waited out, not reported (SPEC 5, 8.3).
    lock_messages=tuple(
        (name, words)
        for name in _duckdb("IOException")
        for words in ("could not set lock", "conflicting lock", "database is locked")
    ),
    conflict_messages=tuple((name, "conflict") for name in _duckdb("TransactionException")),
)
"""What DuckDB's errors mean, for :mod:`backfill.faults`."""


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file (or ``:memory:``, for tests that need no file)."""

    kind = "duckdb"
    dialect = "duckdb"
    IN_LOCAL_FILES = True
    ERRORS = DUCKDB_ERRORS

    @classmethod
    def parse_location(cls, url: str) -> str:
        """A file path, ``duckdb:///PATH`` or ``:memory:``."""
        if not url.startswith("duckdb://"):
            return url
        path = url.removeprefix("duckdb://")
        path = path[1:] if path.startswith("//") else path
        if not path:
            raise BadInput(f"malformed warehouse URL {url!r} (expected duckdb:///PATH)")
        return path

    @classmethod
    def url_of(cls, location: str) -> str:
        return location if location == ":memory:" else str(Path(location).resolve())

    @classmethod
    def local_file(cls, location: str) -> str | None:
        return None if location == ":memory:" else location

    @classmethod
    def check_exists(cls, location: str) -> None:
        if location != ":memory:" and not Path(location).is_file():
            raise BadInput(
                f"DuckDB warehouse {location} does not exist "
                f"(create a demo with: python -m backfill demo --warehouse {location})"
            )

    def __init__(
        self,
        settings: Settings,
        path: str | Path,
        *,
        idle_close_s: float = IDLE_CLOSE_S,
        lock_wait_s: float = LOCK_WAIT_S,
    ):
        super().__init__(settings)
        self.path = str(path)
        self.idle_close_s = idle_close_s
        self.lock_wait_s = lock_wait_s
        self._guard = threading.Lock()
        self._database: duckdb.DuckDBPyConnection | None = None
        self._users = 0
        self._idle_timer: threading.Timer | None = None
        self._closes_at_exit = False
        self._marked_waiting = False

    def describe(self) -> str:
        # Absolute: runs lease (warehouse, stage, date), so one file must have one name from any directory.
        return f"DuckDB file {self.path if self.path == ':memory:' else Path(self.path).resolve()}"

    @property
    def url(self) -> str:
        return self.url_of(self.path)

    def change_stamp(self) -> str | None:
        """The database file's and its write-ahead log's identity, size and times: every commit
        writes one of them. None for ``:memory:``, or while the last change is younger than
        :data:`STAMP_SETTLED_S`."""
        if self.path == ":memory:":
            return None
        parts, newest = [], 0
        for path in (Path(self.path), Path(f"{self.path}.wal")):
            try:
                found = path.stat()
            except FileNotFoundError:
                parts.append("-")
                continue
            except OSError:
                return None
            parts.append(f"{found.st_ino}:{found.st_size}:{found.st_mtime_ns}:{found.st_ctime_ns}")
            newest = max(newest, found.st_mtime_ns, found.st_ctime_ns)
        if time.time_ns() - newest < STAMP_SETTLED_S * 1e9:
            return None
        return f"{Path(self.path).resolve()} " + " ".join(parts)

    @property
    def _waiting_mark(self) -> Path:
        """The file a process waiting to open the database touches on each failed attempt, so the
        process holding it (a backfill between windows) can make way (DuckDB has no lock queue)."""
        return Path(f"{self.path}.waiting")

    def readers_waiting(self) -> bool:
        """Whether another process has been trying to open the file within :data:`WAITING_FRESH_S`."""
        if self.path == ":memory:":
            return False
        try:
            touched = self._waiting_mark.stat().st_mtime
        except OSError:
            return False
        return time.time() - touched < WAITING_FRESH_S

    def make_way(self) -> bool:
        """Close the file and wait (at most :data:`READER_TURN_S`) until the waiting reader has opened
        it; True when it did. The next request reopens the file once the reader lets go."""
        self.close()
        mark = self._waiting_mark
        poll = tenacity.Retrying(
            stop=tenacity.stop_after_delay(READER_TURN_S),
            wait=tenacity.wait_fixed(0.02),
            retry=tenacity.retry_if_result(lambda waiting: waiting),
            retry_error_callback=lambda state: True,  # still waiting at the deadline: go on
        )
        return not poll(mark.exists)

    def name_ref(self, dataset: str, table: str) -> str:
        return f"`{dataset}`.`{table}`"

    def table_schema(self, dataset: str, table: str) -> list[Column] | None:
        with self._cursor() as connection:
            rows = connection.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = $dataset AND table_name = $table ORDER BY ordinal_position",
                {"dataset": dataset, "table": table},
            ).fetchall()
        return [
            Column(name, GOOGLESQL_TYPES.get(kind.upper(), kind.upper()), nullable == "NO")
            for name, kind, nullable in rows
        ] or None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Keep the database open for every request in the block (they share warm pages)."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    @contextlib.contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A cursor of the open database, for this thread and this request only."""
        database = self._acquire()
        cursor = database.cursor()
        try:
            yield cursor
        finally:
            cursor.close()
            self._release()

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        with self._guard:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            if self._database is None:
                self._database = self._open()
            self._users += 1
            return self._database

    def _release(self) -> None:
        with self._guard:
            self._users -= 1
            if self._users > 0 or self.path == ":memory:":
                return
            if self.idle_close_s <= 0:
                self._close_now()
                return
            self._idle_timer = threading.Timer(self.idle_close_s, self._close_if_idle)
            self._idle_timer.daemon = True
            self._idle_timer.start()

    def _close_if_idle(self) -> None:
        with self._guard:
            if self._users == 0:
                self._close_now()

    def _close_now(self) -> None:
        if self._database is not None:
            self._database.close()
            self._database = None

    def _open(self) -> duckdb.DuckDBPyConnection:
        """Open the file, waiting (briefly and repeatedly) while another process holds it."""

        def on_wait(state: tenacity.RetryCallState) -> None:
            """Say once that the file is held; mark on every attempt that this process waits."""
            if state.attempt_number == 1:
                log.warning(
                    "waiting up to %.0f s for %s: another process holds it", self.lock_wait_s, self.path
                )
            with contextlib.suppress(OSError):  # the holder makes way when it can (make_way)
                self._waiting_mark.touch()
                self._marked_waiting = True

        opener = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.lock_wait_s),
            wait=tenacity.wait_random(0.05, 0.3),
            retry=tenacity.retry_if_exception(is_lock_conflict),
            before_sleep=on_wait,
            reraise=True,
        )
        import duckdb

        database = opener(duckdb.connect, self.path)
        if self._marked_waiting:  # in: the holder may go on (another waiter marks again)
            self._marked_waiting = False
            self._waiting_mark.unlink(missing_ok=True)
        database.execute("SET TimeZone = 'UTC'")
        database.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
        if not self._closes_at_exit:
            # A clean close checkpoints the write-ahead log into the file; don't leave it to chance.
            atexit.register(self.close)
            self._closes_at_exit = True
        return database

    def _query(self, statements: tuple[str, ...], params: dict, **options: Any) -> pd.DataFrame:
        (statement,) = statements
        with self._cursor() as connection:
            cursor = connection.execute(statement, _bind(statement, params))
            date_columns = [d[0] for d in cursor.description if str(d[1]).upper() == "DATE"]
            frame = cursor.df()
        return dates_to_python(frame, date_columns)

    def _execute(self, statements: tuple[str, ...], params: dict, **options: Any) -> None:
        with self._cursor() as connection:

            def run_one(number: int, statement: str) -> None:
                connection.execute(statement, _bind(statement, params))

            def roll_back() -> None:
                import duckdb

                with contextlib.suppress(duckdb.Error):
                    connection.execute("ROLLBACK")

            self._run_script(statements, run_one, roll_back)

    def existing_tables(self) -> dict[str, dict[str, str]]:
        """The labels of each of the three tables that exists, read from the table's comment."""
        wanted = {(self.dataset(table), table.name) for table in TABLES.values()}
        with self._cursor() as connection:
            rows = connection.execute(
                "SELECT schema_name, table_name, comment FROM duckdb_tables() WHERE database_name = current_database()"
            ).fetchall()
        return {name: _labels_of(comment) for schema, name, comment in rows if (schema, name) in wanted}

    def label_tables(self, labels: dict[str, str]) -> None:
        """Labels as the three tables' comments (``key=value,...``): DuckDB has no table labels, and a
        comment, like a BigQuery label, stays with the table and not with a copy of its rows."""
        text = ",".join(f"{key}={value}" for key, value in sorted(labels.items()))
        with self._cursor() as connection:
            for table in TABLES.values():
                # Names are validated identifiers; the comment goes in as a literal (COMMENT ON takes
                # no parameters), from the code's own labels, never from input.
                connection.execute(f'COMMENT ON TABLE "{self.dataset(table)}"."{table.name}" IS \'{text}\'')

    def _create_dataset(self, dataset: str) -> None:
        self._count()
        with self._cursor() as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        self._count()
        columns = ", ".join(table.column_names)
        with self._cursor() as connection:
            connection.register("incoming_rows", frame[list(table.column_names)])
            try:
                connection.execute(
                    f'INSERT INTO "{self.dataset(table)}"."{table.name}" ({columns}) '
                    f"SELECT {columns} FROM incoming_rows"
                )
            finally:
                connection.unregister("incoming_rows")

    def close(self) -> None:
        """Close the database now (waiting requests reopen it)."""
        with self._guard:
            if self._idle_timer is not None:
                self._idle_timer.cancel()
                self._idle_timer = None
            self._close_now()


def _labels_of(comment: str | None) -> dict[str, str]:
    """The ``key=value,...`` labels of a table's comment (any other comment: none)."""
    pairs = (part.split("=", 1) for part in (comment or "").split(",") if "=" in part)
    return {key.strip(): value.strip() for key, value in pairs}


def _bind(statement: str, params: dict) -> dict | None:
    """Only the parameters a statement uses (DuckDB refuses unused ones)."""
    used = set(_DOLLAR_PARAM.findall(statement))
    return {name: value for name, value in params.items() if name in used} or None
