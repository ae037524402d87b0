"""Whether a GoogleSQL statement reads every stage table through a filter on its date column.

BigQuery refuses a query on a table with ``require_partition_filter = true`` unless the query filters
that table's partitioning column by a constant expression (a literal or a parameter) in its own
WHERE (or, for MERGE, the ON of its target). A join on the date alone does not count.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp

COMPARISONS = (exp.EQ, exp.Between, exp.In, exp.GTE, exp.LTE, exp.GT, exp.LT)


def _constant(node: exp.Expression) -> bool:
    return node.find(exp.Column) is None


def _filters(condition: exp.Expression | None, alias: str, date_column: str, only_table: bool) -> bool:
    if condition is None:
        return False
    for predicate in condition.find_all(*COMPARISONS):
        column = predicate.this
        if not isinstance(column, exp.Column) or column.name.lower() != date_column:
            continue
        if column.table and column.table.lower() != alias and not only_table:
            continue
        others = [
            value
            for key, value in predicate.args.items()
            if key != "this" and isinstance(value, exp.Expression)
        ]
        others += [item for key, value in predicate.args.items() if isinstance(value, list) for item in value]
        if others and all(_constant(other) for other in others):
            return True
    return False


def unfiltered_reads(sql: str, stage_tables: dict[str, str]) -> list[str]:
    """Stage tables (``dataset.table`` -> date column) read in ``sql`` without a constant filter on
    their date column, as ``dataset.table`` (one entry per unfiltered reference)."""
    found = []
    for statement in sqlglot.parse(sql, read="bigquery"):
        if statement is None:
            continue
        for table in statement.find_all(exp.Table):
            key = f"{table.db}.{table.name}".lower()
            if key not in stage_tables:
                continue
            date_column = stage_tables[key]
            alias = table.alias_or_name.lower()
            owner = table.find_ancestor(exp.Select, exp.Delete, exp.Update, exp.Merge)
            if isinstance(owner, exp.Merge):
                condition = owner.args.get("on") if owner.this is table else None
                if condition is None:  # the source side of a MERGE: its own SELECT filters
                    continue
            elif isinstance(owner, (exp.Delete, exp.Update, exp.Select)):
                condition = owner.args.get("where")
            else:
                continue
            sources = list(owner.find_all(exp.Table)) if owner is not None else []
            only = (
                len(
                    [
                        t
                        for t in sources
                        if t.find_ancestor(exp.Select, exp.Delete, exp.Update, exp.Merge) is owner
                    ]
                )
                == 1
            )
            where = condition.this if isinstance(condition, exp.Where) else condition
            if not _filters(where, alias, date_column, only):
                found.append(key)
    return found


def stage_tables_of(settings) -> dict[str, str]:
    """``dataset.table`` -> date column of every stage of the settings' pipeline."""
    return {
        f"{settings.dataset_name(stage.dataset)}.{stage.table}".lower(): stage.date_column.lower()
        for stage in settings.pipeline.stages
    }


def violations(statements: Iterable[str], stage_tables: dict[str, str]) -> list[tuple[str, list[str]]]:
    return [(sql, bad) for sql in statements if (bad := unfiltered_reads(sql, stage_tables))]
