"""``python -m backfill doctor``: is this warehouse ready for the console? Checks only, no writes.

One line per check, each saying what to fix when it is not fine: the connection (credentials), then
the adapter's own checks (BigQuery: datasets, location, partitioning and clustering, permissions by
dry runs), then every table against ``backfill/warehouse/schema.py``: a missing table, a missing
required column or a column of another type fails; a missing optional column is a warning.
"""

from __future__ import annotations

from collections.abc import Iterator

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.warehouse.base import FAIL, OK, WARN, Check, Warehouse
from backfill.warehouse.schema import TABLES


def table_checks(warehouse: Warehouse) -> Iterator[Check]:
    """Each of the three tables against its schema: exists, has its columns, with their types."""
    found = warehouse.demo_table_columns()
    for name, table in TABLES.items():
        columns = found.get(name)
        where = f"{warehouse.dataset(table)}.{name}"
        if columns is None:
            yield Check(
                f"table {name}",
                FAIL,
                f"{where} does not exist: point BACKFILL_{table.role.upper()}_DATASET at the pipeline's "
                "dataset (or build a sandbox with: python -m backfill demo)",
            )
            continue
        problems: list[tuple[str, str]] = []
        for column, kind in table.columns:
            required = column in table.required
            if column not in columns:
                status = FAIL if required else WARN
                why = "required" if required else "optional, but the built-in SQL uses it"
                problems.append(
                    (
                        status,
                        f"lacks column {column} {kind} ({why}): add it with ALTER TABLE {where} ADD COLUMN {column} {kind}",
                    )
                )
            elif columns[column] != kind:
                problems.append((FAIL, f"column {column} is {columns[column]}, expected {kind}"))
        if not problems:
            yield Check(f"table {name}", OK, f"{where} has every column of the schema")
        for status, detail in problems:
            yield Check(f"table {name}", status, f"{where} {detail}")


def run_checks(warehouse: Warehouse) -> list[Check]:
    """Every check, in order; an error inside one check is that check's failure, not the end."""
    checks: list[Check] = [Check("warehouse", OK, warehouse.describe())]
    for source in (warehouse.health_checks, lambda: table_checks(warehouse)):
        try:
            checks.extend(source())
        except BackfillError as exc:
            checks.append(Check("warehouse", FAIL, " ".join(str(exc).split())))
    return checks


def doctor(settings: Settings, warehouse: Warehouse) -> tuple[list[Check], int]:
    """(the checks, exit code): 0 when nothing failed (warnings allowed), 1 otherwise."""
    checks = run_checks(warehouse)
    return checks, 1 if any(check.status == FAIL for check in checks) else 0


def format_check(check: Check) -> str:
    return f"{check.status:<4}  {check.name}: {check.detail}"
