"""GoogleSQL translated for DuckDB keeps BigQuery's answers (backfill/warehouse/sql.py).

Expected rows come from BigQuery's documented rules for ``x IN UNNEST(array)``: TRUE when the array
holds x; NULL when x is NULL or the array holds a NULL (and not x); FALSE for an empty or NULL
array. A WHERE keeps only TRUE rows, so under NOT a NULL answer drops the row too.
"""

from __future__ import annotations

import duckdb
import pytest

from backfill.warehouse.sql import translate

VALUES = "SELECT * FROM (VALUES (1), (2), (3), (NULL)) AS v(x)"


def kept(where: str, values: list | None) -> list:
    (statement,) = translate(f"SELECT x FROM ({VALUES}) AS v WHERE {where}", "duckdb")
    connection = duckdb.connect()
    rows = connection.execute(statement, {"list": values}).fetchall()
    return sorted((x for (x,) in rows), key=lambda x: (x is not None, x or 0))


@pytest.mark.parametrize(
    ("where", "values", "expected"),
    [
        ("x IN UNNEST(@list)", [1, 2], [1, 2]),
        ("x IN UNNEST(@list)", [1, None], [1]),
        ("x IN UNNEST(@list)", [], []),
        ("x IN UNNEST(@list)", None, []),
        ("x > 1 AND (x IN UNNEST(@list))", [1, 2], [2]),
        ("NOT x IN UNNEST(@list)", [1, 2], [3]),
        ("NOT x IN UNNEST(@list)", [1, None], []),
        ("NOT x IN UNNEST(@list)", [], [None, 1, 2, 3]),  # an empty array: FALSE, even for NULL
        ("x IN UNNEST(@list) OR x = 3", [1, None], [1, 3]),
    ],
)
def test_in_unnest_keeps_the_rows_bigquery_keeps(where, values, expected):
    assert kept(where, values) == expected


def test_a_filter_on_a_list_is_a_plain_array_test_duckdb_can_scan_with():
    (statement,) = translate("SELECT x FROM t WHERE x > 1 AND x IN UNNEST(@dates)", "duckdb")
    assert statement == "SELECT x FROM t WHERE x > 1 AND ARRAY_CONTAINS($dates, x)"


def test_a_list_test_whose_null_answer_shows_keeps_bigquerys_null_rules():
    for template in ("SELECT x IN UNNEST(@dates) FROM t", "SELECT x FROM t WHERE NOT x IN UNNEST(@dates)"):
        (statement,) = translate(template, "duckdb")
        assert "LIST_COUNT" in statement, statement
