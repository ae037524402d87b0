"""Stale rows: rows of the downstream tables that a correct pipeline would not hold (SPEC 3).

Categories, counted separately (a row may fall in several):

- ``orphan``: no player_game_summary row for its (date, player): MERGE leftovers, renamed players;
- ``duplicate``: an extra row for the table's key (the newest row of a key is not counted);
- ``outdated``: computed before its upstream row last changed;
- ``old_version``: feature or model version other than the configured current one;
- ``null_field``: NULL in a required column.

One flagged-rows query per table serves the counts, the preview and the deletion, so the three can
never disagree about which rows are stale.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from backfill.config import Settings
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import ML_FEATURE_STORE, PLAYER_PROP_PREDICTIONS, TABLES, Table

CATEGORIES = ("orphan", "duplicate", "outdated", "old_version", "null_field")


def _null_check(table: Table) -> str:
    return " OR ".join(f"t.{column} IS NULL" for column in table.required)


# Each flagged query returns the table's rows of the range with one boolean per category.
FLAGGED = {
    ML_FEATURE_STORE.name: f"""SELECT t.*,
  COALESCE(u.player_lookup IS NULL, TRUE) AS orphan,
  ROW_NUMBER() OVER (PARTITION BY t.game_date, t.player_lookup ORDER BY t.processed_at DESC) > 1 AS duplicate,
  COALESCE(t.source_processed_at < u.processed_at, FALSE) AS outdated,
  COALESCE(t.feature_version != @feature_version, FALSE) AS old_version,
  ({_null_check(ML_FEATURE_STORE)}) AS null_field
FROM {{mlfs}} AS t
LEFT JOIN (SELECT game_date, player_lookup, MAX(processed_at) AS processed_at FROM {{pgs}}
  WHERE game_date BETWEEN @start AND @end GROUP BY game_date, player_lookup) AS u
  ON u.game_date = t.game_date AND u.player_lookup = t.player_lookup
WHERE t.game_date BETWEEN @start AND @end""",
    PLAYER_PROP_PREDICTIONS.name: f"""SELECT t.*,
  COALESCE(u.player_lookup IS NULL, TRUE) AS orphan,
  ROW_NUMBER() OVER (PARTITION BY t.game_date, t.player_lookup, t.system_id ORDER BY t.created_at DESC) > 1
    AS duplicate,
  COALESCE(t.feature_processed_at < f.processed_at, FALSE) AS outdated,
  COALESCE(t.model_version != @model_version, FALSE) AS old_version,
  ({_null_check(PLAYER_PROP_PREDICTIONS)}) AS null_field
FROM {{pred}} AS t
LEFT JOIN (SELECT DISTINCT game_date, player_lookup FROM {{pgs}}
  WHERE game_date BETWEEN @start AND @end) AS u
  ON u.game_date = t.game_date AND u.player_lookup = t.player_lookup
LEFT JOIN (SELECT game_date, player_lookup, MAX(processed_at) AS processed_at FROM {{mlfs}}
  WHERE game_date BETWEEN @start AND @end GROUP BY game_date, player_lookup) AS f
  ON f.game_date = t.game_date AND f.player_lookup = t.player_lookup
WHERE t.game_date BETWEEN @start AND @end""",
}

ANY_FLAG = " OR ".join(CATEGORIES)

COUNTS_SQL = "\nUNION ALL\n".join(
    f"""SELECT game_date, '{name}' AS table_name,
  {", ".join(f"COUNTIF({category}) AS {category}" for category in CATEGORIES)}
FROM ({flagged}) AS flagged
WHERE {ANY_FLAG}
GROUP BY game_date"""
    for name, flagged in FLAGGED.items()
)


def _params(settings: Settings, start: dt.date, end: dt.date) -> dict:
    return {
        "start": start,
        "end": end,
        "feature_version": settings.feature_version,
        "model_version": settings.model_version,
    }


def stale_counts(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Stale rows per date, table and category (long format; only non-zero counts)."""
    wide = warehouse.query(COUNTS_SQL, _params(settings, start, end))
    long = wide.melt(
        id_vars=["game_date", "table_name"],
        value_vars=list(CATEGORIES),
        var_name="category",
        value_name="rows",
    )
    long = long[long["rows"] > 0].astype({"rows": "int64"})
    return long.sort_values(["game_date", "table_name", "category"]).reset_index(drop=True)


def stale_preview(
    warehouse: Warehouse, settings: Settings, table: str, start: dt.date, end: dt.date, limit: int = 200
) -> pd.DataFrame:
    """Up to ``limit`` stale rows of one table with their category flags."""
    sql = f"SELECT * FROM ({FLAGGED[table]}) AS flagged WHERE {ANY_FLAG} ORDER BY game_date, player_lookup LIMIT @limit"
    return warehouse.query(sql, _params(settings, start, end) | {"limit": int(limit)})


def _keep_table(name: str) -> str:
    return f"stale_keep_{name}"


DELETE_SQL = (
    "".join(
        f"CREATE TEMP TABLE {_keep_table(name)} AS SELECT {', '.join(TABLES[name].column_names)} "
        f"FROM ({flagged}) AS flagged WHERE game_date IN (SELECT d FROM UNNEST(@dates) AS d) "
        f"AND NOT ({ANY_FLAG});\n"
        for name, flagged in FLAGGED.items()
    )
    + "BEGIN TRANSACTION;\n"
    + "".join(
        f"DELETE FROM {{{name}}} WHERE game_date IN (SELECT d FROM UNNEST(@dates) AS d);\n"
        f"INSERT INTO {{{name}}} ({', '.join(TABLES[name].column_names)}) "
        f"SELECT {', '.join(TABLES[name].column_names)} FROM {_keep_table(name)};\n"
        for name in FLAGGED
    )
    + "COMMIT TRANSACTION;\n"
    + "".join(f"DROP TABLE {_keep_table(name)};\n" for name in FLAGGED)
)
"""Keep every row that is not stale, then replace the affected dates with the kept rows atomically.

Replacing whole dates is what makes duplicates deletable: two identical rows cannot be told apart
by a DELETE's condition, but keeping exactly one of them is easy.
"""


def delete_stale(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Delete the stale rows of a range in one transaction; returns the counts that were deleted."""
    counts = stale_counts(warehouse, settings, start, end)
    if counts.empty:
        return counts
    dates = sorted(set(counts["game_date"]))
    warehouse.execute(DELETE_SQL, _params(settings, min(dates), max(dates)) | {"dates": dates})
    return counts
