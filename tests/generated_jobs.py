"""The job template of the generated pipelines (tests/test_generated_pipelines.py): a team's MERGE.

Each function is a ``python`` processor: for its dates it writes, for every player of the reference
table on that date, one row per system (MERGE: the rows of those keys are replaced, any other row of
the date stays, as a MERGE leaves it), with the stage's own column names read from the pipeline.
Variants leave a duplicate behind, or skip the players the stage counts as bootstrap. The SQL is
DuckDB's own, written here, not the console's.
"""

from __future__ import annotations

import datetime as dt

import duckdb

SYSTEMS = ("sys_a", "sys_b")
SYSTEM_COLUMN = "c_system"
REQUIRED_FILL = "filled"
"""What the job writes in a REQUIRED column the console does not know about."""


def _write(
    dates: list[dt.date], context, *, leave_duplicate: bool = False, skip_bootstrap: bool = False
) -> dict:
    pipeline = context.settings.pipeline
    stage = pipeline.stage(context.stage)
    upstream = pipeline.upstream(stage)
    reference = pipeline.reference
    table = f"{stage.dataset}.{stage.table}"
    ref_table = f"{reference.dataset}.{reference.table}"
    up_table = f"{upstream.dataset}.{upstream.table}"
    d, p = stage.date_column, stage.player_column
    rd, rp = reference.date_column, reference.player_column
    with_system = SYSTEM_COLUMN in stage.duplicate_key
    columns = [d, p]
    values = ["r.day", "r.player"]
    if with_system:
        columns.append(SYSTEM_COLUMN)
        values.append("s.system")
    if stage.version_column:
        columns.append(stage.version_column)
        values.append("$version")
    if stage.upstream_time_column:
        columns.append(stage.upstream_time_column)
        values.append("u.written_at")
    columns.append(stage.written_at_column)
    values.append("$now")
    extra_required = [
        c for c in context.settings.pipeline.stage(context.stage).required_columns if c not in columns
    ]
    columns += extra_required
    values += ["$fill"] * len(extra_required)
    history = (
        f"(SELECT COUNT(DISTINCT h.{rd}) FROM {ref_table} AS h WHERE h.{rp} = r.player AND h.{rd} < r.day "
        f"AND h.{rd} >= make_date(year(r.day) - CASE WHEN month(r.day) < 8 THEN 1 ELSE 0 END, 8, 1))"
    )
    where = f"WHERE {history} >= {stage.bootstrap_min_history}" if skip_bootstrap else ""
    systems = f"CROSS JOIN (SELECT UNNEST({list(SYSTEMS)!r}) AS system) AS s" if with_system else ""
    upstream_times = (
        f"LEFT JOIN (SELECT {upstream.date_column} AS day, {upstream.player_column} AS player, "
        f"MAX({upstream.written_at_column}) AS written_at FROM {up_table} GROUP BY 1, 2) AS u "
        "ON u.day = r.day AND u.player = r.player"
        if stage.upstream_time_column
        else ""
    )
    params = {
        "dates": [day.isoformat() for day in dates],
        "version": stage.current_version,
        "now": context.now.replace(tzinfo=None),
        "fill": REQUIRED_FILL,
    }
    used = {
        name: value for name, value in params.items() if f"${name}" in " ".join(values) or name == "dates"
    }
    connection = duckdb.connect(context.warehouse.path)
    try:
        connection.execute("BEGIN TRANSACTION")
        connection.execute(
            f"DELETE FROM {table} AS t USING (SELECT DISTINCT {rd} AS day, {rp} AS player FROM {ref_table}) AS r "
            f"WHERE t.{d} = r.day AND t.{p} = r.player AND CAST(t.{d} AS VARCHAR) IN (SELECT UNNEST($dates))",
            {"dates": params["dates"]},
        )
        connection.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
            f"FROM (SELECT DISTINCT {rd} AS day, {rp} AS player FROM {ref_table} "
            f"WHERE CAST({rd} AS VARCHAR) IN (SELECT UNNEST($dates))) AS r {systems} {upstream_times} {where}",
            used,
        )
        if leave_duplicate:
            connection.execute(
                f"INSERT INTO {table} SELECT * FROM {table} WHERE CAST({d} AS VARCHAR) IN (SELECT UNNEST($dates)) "
                f"ORDER BY ALL LIMIT 1",
                {"dates": params["dates"]},
            )
        connection.execute("COMMIT")
    finally:
        connection.close()
    return {}


def merge(dates, context) -> dict:
    """Every player of the dates, one row per key."""
    return _write(dates, context)


def merge_leaving_a_duplicate(dates, context) -> dict:
    """As :func:`merge`, then one row of the batch appended a second time."""
    return _write(dates, context, leave_duplicate=True)


def merge_without_bootstrap_players(dates, context) -> dict:
    """As :func:`merge`, but no row for players with too few earlier games this season."""
    return _write(dates, context, skip_bootstrap=True)
