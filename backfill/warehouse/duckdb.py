"""The embedded warehouse: one DuckDB file, schemas standing in for BigQuery datasets.

DuckDB lets one process at a time open a file for writing, so connections are short: one per
request, or one per :meth:`DuckDBWarehouse.session` block. Another process holding the file shows
up as ``duckdb.IOException`` ("Could not set lock"), which the retry policy treats as transient.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from backfill.config import Settings
from backfill.crashpoints import IN_TRANSACTION, crash_point
from backfill.warehouse.base import Warehouse, dates_to_python
from backfill.warehouse.schema import Table

_DOLLAR_PARAM = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


class DuckDBWarehouse(Warehouse):
    """A DuckDB database file (or ``:memory:``, for tests that need no file)."""

    kind = "duckdb"
    dialect = "duckdb"

    def __init__(self, settings: Settings, path: str | Path):
        super().__init__(settings)
        self.path = str(path)
        self._local = threading.local()
        self._memory: duckdb.DuckDBPyConnection | None = None

    def describe(self) -> str:
        return f"DuckDB file {self.path}"

    def table_ref(self, table: Table) -> str:
        return f"`{self.dataset(table)}`.`{table.name}`"

    @contextlib.contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """One connection for every request in the block (per thread); closed at its end."""
        current = getattr(self._local, "connection", None)
        if current is not None:
            yield current
            return
        connection = self._connect()
        self._local.connection = connection
        try:
            yield connection
        finally:
            self._local.connection = None
            if connection is not self._memory:
                connection.close()

    def _connect(self) -> duckdb.DuckDBPyConnection:
        if self.path == ":memory:":
            if self._memory is None:
                self._memory = duckdb.connect(":memory:")
                self._memory.execute("SET TimeZone = 'UTC'")
            return self._memory.cursor()
        connection = duckdb.connect(self.path)
        connection.execute("SET TimeZone = 'UTC'")
        return connection

    def _query(self, statements: tuple[str, ...], params: dict, **options: Any) -> pd.DataFrame:
        (statement,) = statements
        with self.session() as connection:
            cursor = connection.execute(statement, _bind(statement, params))
            date_columns = [d[0] for d in cursor.description if str(d[1]).upper() == "DATE"]
            frame = cursor.df()
        return dates_to_python(frame, date_columns)

    def _execute(self, statements: tuple[str, ...], params: dict, **options: Any) -> None:
        with self.session() as connection:
            in_transaction = False
            try:
                for statement in statements:
                    keyword = statement.strip().split(None, 1)[0].upper()
                    if keyword in {"BEGIN", "COMMIT", "ROLLBACK"}:
                        in_transaction = keyword == "BEGIN"
                    connection.execute(statement, _bind(statement, params))
                    if in_transaction and keyword == "DELETE":
                        crash_point(IN_TRANSACTION)
            except BaseException:
                if in_transaction:
                    with contextlib.suppress(duckdb.Error):
                        connection.execute("ROLLBACK")
                raise

    def _create_dataset(self, dataset: str) -> None:
        self._count()
        with self.session() as connection:
            connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{dataset}"')

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        self._count()
        columns = ", ".join(table.column_names)
        with self.session() as connection:
            connection.register("incoming_rows", frame[list(table.column_names)])
            try:
                connection.execute(
                    f'INSERT INTO "{self.dataset(table)}"."{table.name}" ({columns}) '
                    f"SELECT {columns} FROM incoming_rows"
                )
            finally:
                connection.unregister("incoming_rows")

    def close(self) -> None:
        if self._memory is not None:
            self._memory.close()
            self._memory = None


def _bind(statement: str, params: dict) -> dict | None:
    """Only the parameters a statement uses (DuckDB refuses unused ones)."""
    used = set(_DOLLAR_PARAM.findall(statement))
    return {name: value for name, value in params.items() if name in used} or None
