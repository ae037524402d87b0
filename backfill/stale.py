"""Stale rows: rows of the pipeline's stage tables that a correct pipeline would not hold (SPEC 3).

Categories, counted separately (a row may fall in several):

- ``orphan``: no reference row for its (date, player): MERGE leftovers, renamed players;
- ``duplicate``: an extra row for the stage's ``duplicate_key`` (the newest row of a key is not counted);
- ``outdated``: computed before its upstream row last changed (the stage's ``upstream_time_column``
  older than the upstream row's ``written_at_column``);
- ``old_version``: ``version_column`` other than the stage's ``current_version``;
- ``null_field``: NULL in one of the stage's ``required_columns``.

A category a stage does not declare is never flagged for it. One flagged-rows query per stage serves
the counts, the preview and the deletion, so the three can never disagree about which rows are stale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import pandas as pd

from backfill.config import Settings
from backfill.pipeline import Pipeline, Stage
from backfill.validate import date_span
from backfill.warehouse import Warehouse

CATEGORIES = ("orphan", "duplicate", "outdated", "old_version", "null_field")

ANY_FLAG = " OR ".join(CATEGORIES)


def _in_range(column: str) -> str:
    return f"{column} BETWEEN @start AND @end"


def flagged_sql(pipeline: Pipeline, stage: Stage) -> str:
    """A stage's rows of the range, each with one boolean per category."""
    ref = pipeline.reference
    upstream = pipeline.upstream(stage)
    d, p = stage.date_column, stage.player_column
    joins = [
        f"LEFT JOIN (SELECT DISTINCT {ref.date_column} AS game_date, {ref.player_column} AS player_lookup "
        f"FROM {{{ref.name}}}\n  WHERE {_in_range(ref.date_column)}) AS u\n"
        f"  ON u.game_date = t.{d} AND u.player_lookup = t.{p}"
    ]
    outdated = "FALSE"
    if stage.upstream_time_column:
        joins.append(
            f"LEFT JOIN (SELECT {upstream.date_column} AS game_date, {upstream.player_column} AS player_lookup, "
            f"MAX({upstream.written_at_column}) AS written_at FROM {{{upstream.name}}}\n"
            f"  WHERE {_in_range(upstream.date_column)} GROUP BY {upstream.date_column}, {upstream.player_column}) AS f\n"
            f"  ON f.game_date = t.{d} AND f.player_lookup = t.{p}"
        )
        outdated = f"COALESCE(t.{stage.upstream_time_column} < f.written_at, FALSE)"
    old_version = "FALSE"
    if stage.version_column and stage.current_version is not None:
        old_version = f"COALESCE(t.{stage.version_column} != @current_version_{stage.name}, FALSE)"
    null_field = " OR ".join(f"t.{column} IS NULL" for column in stage.required_columns) or "FALSE"
    key = ", ".join(f"t.{column}" for column in stage.key)
    join_text = "\n".join(joins)
    return f"""SELECT t.*,
  COALESCE(u.player_lookup IS NULL, TRUE) AS orphan,
  ROW_NUMBER() OVER (PARTITION BY {key} ORDER BY t.{stage.written_at_column} DESC) > 1 AS duplicate,
  {outdated} AS outdated,
  {old_version} AS old_version,
  ({null_field}) AS null_field
FROM {{{stage.name}}} AS t
{join_text}
WHERE {_in_range(f"t.{d}")}"""


@lru_cache(maxsize=16)
def counts_sql(pipeline: Pipeline, stages: tuple[str, ...]) -> str:
    """Stale rows per date, stage and category, for the named stages (one statement)."""
    return "\nUNION ALL\n".join(
        f"""SELECT {stage.date_column} AS game_date, '{stage.name}' AS stage, '{stage.table}' AS table_name,
  {", ".join(f"COUNTIF({category}) AS {category}" for category in CATEGORIES)}
FROM ({flagged_sql(pipeline, stage)}) AS flagged
WHERE {ANY_FLAG}
GROUP BY {stage.date_column}"""
        for stage in map(pipeline.stage, stages)
    )


@lru_cache(maxsize=16)
def delete_sql(pipeline: Pipeline, stages: tuple[str, ...]) -> str:
    """Keep every row that is not stale, then replace the affected dates with the kept rows, all in
    one transaction (rows written meanwhile are part of the snapshot, so none is lost).

    Replacing whole dates is what makes duplicates deletable: two identical rows cannot be told
    apart by a DELETE's condition, but keeping exactly one of them is easy.
    """
    body = []
    for stage in map(pipeline.stage, stages):
        keep = f"stale_keep_{stage.name}"
        body += [
            f"CREATE TEMP TABLE {keep} AS SELECT * EXCEPT ({', '.join(CATEGORIES)}) "
            f"FROM ({flagged_sql(pipeline, stage)}) AS flagged "
            f"WHERE {stage.date_column} IN UNNEST(@dates) AND NOT ({ANY_FLAG})",
            f"DELETE FROM {{{stage.name}}} WHERE {stage.date_column} IN UNNEST(@dates)",
            f"INSERT INTO {{{stage.name}}} SELECT * FROM {keep}",
            f"DROP TABLE {keep}",
        ]
    return "BEGIN TRANSACTION;\n" + "".join(f"{statement};\n" for statement in body) + "COMMIT TRANSACTION;"


def _params(settings: Settings, start: dt.date, end: dt.date) -> dict:
    return {"start": start, "end": end} | {
        f"current_version_{stage.name}": stage.current_version
        for stage in settings.pipeline.backfillable
        if stage.current_version is not None
    }


def _stages(settings: Settings, stages: Iterable[str] | None) -> tuple[str, ...]:
    pipeline = settings.pipeline
    return pipeline.stage_names if stages is None else pipeline.check_stages(stages)


def stale_counts(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    stages: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Stale rows per date, stage (and its table) and category (long format; only non-zero counts)."""
    chosen = _stages(settings, stages)
    wide = warehouse.query(counts_sql(settings.pipeline, chosen), _params(settings, start, end))
    long = wide.melt(
        id_vars=["game_date", "stage", "table_name"],
        value_vars=list(CATEGORIES),
        var_name="category",
        value_name="rows",
    )
    long = long[long["rows"] > 0].astype({"rows": "int64"})
    order = {name: index for index, name in enumerate(settings.pipeline.stage_names)}
    long = long.assign(_order=long["stage"].map(order))
    return long.sort_values(["game_date", "_order", "category"]).drop(columns="_order").reset_index(drop=True)


def stale_preview(
    warehouse: Warehouse, settings: Settings, stage: str, start: dt.date, end: dt.date, limit: int = 200
) -> pd.DataFrame:
    """Up to ``limit`` stale rows of one stage's table with their category flags."""
    chosen = settings.pipeline.stage(stage)
    sql = (
        f"SELECT * FROM ({flagged_sql(settings.pipeline, chosen)}) AS flagged WHERE {ANY_FLAG} "
        f"ORDER BY {chosen.date_column}, {chosen.player_column} LIMIT @limit"
    )
    return warehouse.query(sql, _params(settings, start, end) | {"limit": int(limit)})


def delete_pairs(
    settings: Settings, start: dt.date, end: dt.date, stages: Iterable[str] | None = None
) -> list[tuple[str, dt.date]]:
    """The (stage, date) items a deletion of the range may write: what it leases first."""
    return [(stage, day) for stage in _stages(settings, stages) for day in date_span(start, end)]


def delete_stale(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    stages: Iterable[str] | None = None,
    dates: Iterable[dt.date] | None = None,
) -> pd.DataFrame:
    """Delete the stale rows of a range (only of ``dates`` in it, when given) in one transaction;
    returns the counts that were deleted."""
    chosen = _stages(settings, stages)
    counts = stale_counts(warehouse, settings, start, end, chosen)
    if dates is not None:
        counts = counts[counts["game_date"].isin(set(dates))].reset_index(drop=True)
    if counts.empty:
        return counts
    dates = sorted(set(counts["game_date"]))
    touched = tuple(name for name in chosen if name in set(counts["stage"]))
    warehouse.execute(
        delete_sql(settings.pipeline, touched), _params(settings, min(dates), max(dates)) | {"dates": dates}
    )
    return counts
