"""The ``sql`` processor: the console's own set-based replace of whole dates.

A built-in statement computes every row of a batch of dates with window functions over the
look-back range; :meth:`SqlProcessor.script` wraps it in one transaction that deletes the dates'
rows and inserts the new ones, so a date is either as before or fully replaced and no stale row
survives. Before a run, the target table's columns are compared with those the statement writes:
a REQUIRED column it does not write stops the run (doctor's table checks, the preflight of every
write); a NULLABLE one is named in the dry run, since the replace leaves it NULL.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from backfill.processors.base import BatchResult, JobContext, Processor
from backfill.seasons import season_start
from backfill.warehouse import Warehouse


def dates_filter(column: str) -> str:
    """The prunable test of a column against the ``@dates`` array (BigQuery prunes partitions on it)."""
    return f"{column} IN UNNEST(@dates)"


class SqlProcessor(Processor):
    """Replace a batch of dates with the built-in statement's rows, in one transaction."""

    set_based = True
    replaces_whole_dates = True

    def __init__(self, stage, pipeline):
        super().__init__(stage, pipeline)
        from backfill.processors import BUILTINS

        assert self.config.builtin is not None, "a sql processor names its built-in statement"
        self.statement = BUILTINS[self.config.builtin]

    def script(self) -> str:
        """One transaction: delete the dates' rows, insert their recomputed rows."""
        aliases = {
            "{target}": "{" + self.stage.name + "}",
            "{upstream}": "{" + self.pipeline.upstream(self.stage).name + "}",
            "{reference}": "{" + self.pipeline.reference.name + "}",
        }
        insert = self.statement.INSERT
        for placeholder, alias in aliases.items():
            insert = insert.replace(placeholder, alias)
        return (
            "BEGIN TRANSACTION;\n"
            # The range lets the warehouse skip the table's other dates (DuckDB zone maps, BigQuery
            # partitions) before it tests each row against the list.
            f"DELETE FROM {{{self.stage.name}}} WHERE {self.stage.date_column} BETWEEN @first AND @end\n"
            f"  AND {dates_filter(self.stage.date_column)};\n"
            f"{insert};\n"
            "COMMIT TRANSACTION;"
        )

    def params(self, dates: list[dt.date], now: dt.datetime) -> dict[str, Any]:
        """Parameters of :meth:`script` for a set of dates, computed at ``now``."""
        ordered = sorted(set(dates))
        base = {
            "dates": ordered,
            "first": ordered[0],
            "history_start": season_start(ordered[0]),
            "end": ordered[-1],
            "processed_at": now,
        }
        return base | self.statement.params(self.stage)

    def batch_statement(self, dates: list[dt.date], now: dt.datetime) -> tuple[str, dict[str, Any]]:
        return self.script(), self.params(dates, now)

    def run(self, dates: list[dt.date], context: JobContext) -> BatchResult:
        context.warehouse.execute(
            self.script(),
            self.params(dates, context.now),
            labels={"backfill_run": context.run_id, "stage": self.stage.name},
        )
        return BatchResult()

    def preflight(self, warehouse: Warehouse) -> list[str]:
        """NULLABLE columns of the target table that the statement does not write: the dry run names
        them (a REQUIRED one stops every write before this, in doctor's table checks)."""
        written = set(self.statement.COLUMNS)
        nullable = [
            name
            for name, required in warehouse.stage_columns(self.stage)
            if name not in written and not required
        ]
        if nullable:
            table = self.stage.table_name
            return [
                f"{self.stage.name}: {table} column{'s' if len(nullable) > 1 else ''} {', '.join(nullable)} "
                f"{'are' if len(nullable) > 1 else 'is'} not written by the built-in {self.config.builtin} "
                "statement and will be NULL on replaced dates"
            ]
        return []

    def describe(self) -> dict[str, Any]:
        return {"kind": "sql", "builtin": self.config.builtin}
