"""Bytes a page load and a backfill would cost on BigQuery: processed, and billed.

Dry runs (free) give the bytes each statement would process. BigQuery's on-demand billing then
rounds each statement up: at least 10 MB for every table the statement references, and at least
10 MB per statement (https://cloud.google.com/bigquery/pricing#on_demand_pricing). A dry run does not
say how a statement's bytes split between its tables, so the bill is estimated from below as
``max(processed rounded up to the MB, 10 MB x tables referenced)``; for the console's statements,
which read little of each table, the per-table minimum is what decides the bill.

Two pieces of work are reported, as the benchmark and the README quote them:

- a page load of the Coverage page over a range: the daily counts (``coverage.daily_sql``), the
  month's distinct players (``coverage.monthly_players_sql``) and what the console's snapshot sends
  first to learn what changed: on BigQuery two ``INFORMATION_SCHEMA.PARTITIONS`` queries (the data's
  bounds, the partitions' times; each billed its 10 MB minimum), elsewhere the change fingerprints
  (``coverage_snapshot.fingerprint_sql``). A rerun on unchanged data sends nothing: whether data
  changed is the tables' metadata (``tables.get``, no job);
- a backfill of 31 dates: every statement :func:`backfill.cost.backfill_statements` lists (each
  statement of a replace script apart: a script's statements are billed one by one).

Elsewhere (DuckDB) there is nothing to pay and the functions return None.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlglot
from sqlglot import exp

from backfill import cost, coverage
from backfill.config import Settings
from backfill.coverage_snapshot import fingerprint_sql
from backfill.request import BackfillRequest
from backfill.seasons import season_start
from backfill.warehouse import Warehouse

MIN_BILLED_PER_TABLE = 10 * 1024**2
"""BigQuery's on-demand minimum per table referenced by a query (10 MB)."""

BILLING_UNIT = 1024**2
"""Bytes processed are billed rounded up to the MB."""

LabelledStatement = tuple[str, str, dict]
"""(what it is for people, GoogleSQL template, parameters)."""


@dataclass(frozen=True)
class StatementCost:
    """One statement as BigQuery would bill it."""

    label: str
    bytes_processed: int
    tables: int
    """Tables the statement references (each billed at least :data:`MIN_BILLED_PER_TABLE`)."""

    @property
    def bytes_billed(self) -> int:
        rounded = -(-self.bytes_processed // BILLING_UNIT) * BILLING_UNIT
        return max(rounded, MIN_BILLED_PER_TABLE * max(self.tables, 1))


@dataclass(frozen=True)
class CostReport:
    """Bytes processed and billed by one piece of work, statement by statement."""

    work: str
    statements: tuple[StatementCost, ...]
    warehouse: str

    @property
    def bytes_processed(self) -> int:
        return sum(statement.bytes_processed for statement in self.statements)

    @property
    def bytes_billed(self) -> int:
        return sum(statement.bytes_billed for statement in self.statements)

    def text(self) -> str:
        """One line for people."""
        return (
            f"{self.work}: {cost.human_bytes(self.bytes_processed)} processed, "
            f"{cost.human_bytes(self.bytes_billed)} billed by {len(self.statements)} statements "
            f"(dry runs on {self.warehouse})"
        )

    def as_dict(self) -> dict:
        """Plain figures (for the benchmark's JSON)."""
        return {
            "work": self.work,
            "statements": len(self.statements),
            "bytes_processed": self.bytes_processed,
            "bytes_billed": self.bytes_billed,
            "by_statement": [
                {
                    "label": s.label,
                    "bytes_processed": s.bytes_processed,
                    "bytes_billed": s.bytes_billed,
                    "tables": s.tables,
                }
                for s in self.statements
            ],
        }


def tables_referenced(statement: str) -> int:
    """Distinct tables a GoogleSQL statement reads or writes (its CTEs and temp tables are not)."""
    parsed = sqlglot.parse_one(statement, read="bigquery")
    ctes = {cte.alias_or_name for cte in parsed.find_all(exp.CTE)}
    names = set()
    for table in parsed.find_all(exp.Table):
        if not table.name or (not table.db and table.name in ctes):
            continue
        if not table.db:  # an unqualified name is a script's temporary table: no storage billed
            continue
        names.add((table.catalog, table.db, table.name))
    return len(names)


def report(warehouse: Warehouse, work: str, statements: list[LabelledStatement]) -> CostReport | None:
    """Dry-run every statement; None where the warehouse cannot (nothing is sent then)."""
    if not warehouse.SUPPORTS_DRY_RUN:
        return None
    costs = []
    for label, template, params in statements:
        for sent, size in warehouse.estimate_statements(template, params) or []:
            costs.append(StatementCost(label, size, tables_referenced(sent)))
    return CostReport(work, tuple(costs), warehouse.describe())


def page_load_statements(
    settings: Settings, start: dt.date, end: dt.date, warehouse: Warehouse | None = None
) -> list[LabelledStatement]:
    """What a first load of the Coverage page over the range sends: what changed (the warehouse's
    partition metadata where it has it, as BigQuery does, else the change fingerprints), then the
    counts. Whether anything changed at all is metadata on BigQuery (no job: not listed)."""
    pipeline = settings.pipeline
    history_start = season_start(start)
    found = warehouse.metadata_statements(pipeline.stages, history_start, end) if warehouse else None
    changes = found or [
        (
            "fingerprints",
            fingerprint_sql(pipeline),
            {"start": start, "end": end, "history_start": history_start},
        )
    ]
    return [
        *changes,
        ("daily coverage", coverage.daily_sql(pipeline), coverage._range_params(settings, start, end)),
        ("monthly players", coverage.monthly_players_sql(pipeline), {"start": start, "end": end}),
    ]


def backfill_labelled(
    settings: Settings, request: BackfillRequest, now: dt.datetime
) -> list[LabelledStatement]:
    """A backfill's statements (:func:`backfill.cost.backfill_statements`), labelled."""
    measure = coverage.daily_sql(settings.pipeline)
    return [
        ("measure" if template == measure else "replace", template, params)
        for template, params in cost.backfill_statements(settings, request, now)
    ]


def page_load_report(
    warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date
) -> CostReport | None:
    """Bytes processed and billed by one Coverage page load over [start, end]; None on DuckDB."""
    return report(
        warehouse,
        f"Coverage page load {start} to {end}",
        page_load_statements(settings, start, end, warehouse),
    )


def backfill_report(
    warehouse: Warehouse, settings: Settings, first: dt.date, days: int = 31, now: dt.datetime | None = None
) -> CostReport | None:
    """Bytes processed and billed by a backfill of ``days`` dates from ``first`` (every stage, all
    dates replaced: an upper bound of what a run sends); None on DuckDB."""
    now = now or dt.datetime.now(dt.UTC)
    last = first + dt.timedelta(days=days - 1)
    request = BackfillRequest.build(settings, start=first, end=last, today=lambda: max(last, now.date()))
    return report(warehouse, f"{days}-date backfill from {first}", backfill_labelled(settings, request, now))
