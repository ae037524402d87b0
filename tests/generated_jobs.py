"""The job template of the generated pipelines (tests/test_generated_pipelines.py): a team's MERGE.

For its dates a job writes, for every player of the reference table on that date, one row per system
(MERGE: the rows of those keys are replaced, any other row of the date stays, as a MERGE leaves it),
with the stage's own column names. Variants leave a duplicate behind, or skip the players the stage
counts as bootstrap. The same statements serve a ``python`` processor (the functions below) and a
``command`` one (:func:`command_script`, a standalone script). The SQL is DuckDB's own, written
here, not the console's.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb

SYSTEMS = ("sys_a", "sys_b")
SYSTEM_COLUMN = "c_system"
REQUIRED_FILL = "filled"
"""What the job writes in a REQUIRED column the console does not know about."""


def merge_statements(
    pipeline, stage_name: str, *, leave_duplicate: bool = False, skip_bootstrap: bool = False
):
    """The job's statements for a stage (DuckDB SQL with ``$dates``, ``$now`` and constant values)."""
    stage = pipeline.stage(stage_name)
    upstream = pipeline.upstream(stage)
    reference = pipeline.reference
    table = f"{stage.dataset}.{stage.table}"
    ref_table = f"{reference.dataset}.{reference.table}"
    up_table = f"{upstream.dataset}.{upstream.table}"
    d, p = stage.date_column, stage.player_column
    rd, rp = reference.date_column, reference.player_column
    columns, values = [d, p], ["r.day", "r.player"]
    if SYSTEM_COLUMN in stage.duplicate_key:
        columns.append(SYSTEM_COLUMN)
        values.append("s.system")
    if stage.version_column:
        columns.append(stage.version_column)
        values.append(f"'{stage.current_version}'")
    if stage.upstream_time_column:
        columns.append(stage.upstream_time_column)
        values.append("u.written_at")
    columns.append(stage.written_at_column)
    values.append("CAST($now AS TIMESTAMP)")
    extra = [column for column in stage.required_columns if column not in columns]
    columns += extra
    values += [f"'{REQUIRED_FILL}'"] * len(extra)
    history = (
        f"(SELECT COUNT(DISTINCT h.{rd}) FROM {ref_table} AS h WHERE h.{rp} = r.player AND h.{rd} < r.day "
        f"AND h.{rd} >= make_date(year(r.day) - CASE WHEN month(r.day) < 8 THEN 1 ELSE 0 END, 8, 1))"
    )
    where = f"WHERE {history} >= {stage.bootstrap_min_history}" if skip_bootstrap else ""
    systems = (
        f"CROSS JOIN (SELECT UNNEST({list(SYSTEMS)!r}) AS system) AS s"
        if SYSTEM_COLUMN in stage.duplicate_key
        else ""
    )
    upstream_times = (
        f"LEFT JOIN (SELECT {upstream.date_column} AS day, {upstream.player_column} AS player, "
        f"MAX({upstream.written_at_column}) AS written_at FROM {up_table} GROUP BY 1, 2) AS u "
        "ON u.day = r.day AND u.player = r.player"
        if stage.upstream_time_column
        else ""
    )
    in_batch = "IN (SELECT CAST(UNNEST($dates) AS DATE))"
    statements = [
        f"DELETE FROM {table} AS t USING (SELECT DISTINCT {rd} AS day, {rp} AS player FROM {ref_table}) AS r "
        f"WHERE t.{d} = r.day AND t.{p} = r.player AND t.{d} {in_batch}",
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
        f"FROM (SELECT DISTINCT {rd} AS day, {rp} AS player FROM {ref_table} WHERE {rd} {in_batch}) AS r "
        f"{systems} {upstream_times} {where}",
    ]
    if leave_duplicate:
        statements.append(
            f"INSERT INTO {table} SELECT * FROM {table} WHERE {d} {in_batch} ORDER BY ALL LIMIT 1"
        )
    return statements


def run_statements(path: str, statements: list[str], dates: list[str], now: str) -> None:
    """The statements in one transaction on the DuckDB file."""
    connection = duckdb.connect(path)
    try:
        connection.execute("BEGIN TRANSACTION")
        for statement in statements:
            connection.execute(
                statement,
                {name: value for name, value in (("dates", dates), ("now", now)) if f"${name}" in statement},
            )
        connection.execute("COMMIT")
    finally:
        connection.close()


def _python_job(dates: list[dt.date], context, **variant) -> dict:
    statements = merge_statements(context.settings.pipeline, context.stage, **variant)
    now = context.now.replace(tzinfo=None).isoformat(sep=" ")
    run_statements(context.warehouse.path, statements, [day.isoformat() for day in dates], now)
    return {}


def merge(dates, context) -> dict:
    """Every player of the dates, one row per key."""
    return _python_job(dates, context)


def merge_leaving_a_duplicate(dates, context) -> dict:
    """As :func:`merge`, then one row of the batch appended a second time."""
    return _python_job(dates, context, leave_duplicate=True)


def merge_without_bootstrap_players(dates, context) -> dict:
    """As :func:`merge`, but no row for players with too few earlier games this season."""
    return _python_job(dates, context, skip_bootstrap=True)


VARIANTS = {
    "merge": {},
    "duplicate": {"leave_duplicate": True},
    "skip_bootstrap": {"skip_bootstrap": True},
}

_SCRIPT = '''"""A team's backfill job, generated: MERGE {table} for --dates D,D,... (DuckDB at BACKFILL_WAREHOUSE)."""
import datetime, os, sys
import duckdb

STATEMENTS = {statements}
dates = sys.argv[sys.argv.index("--dates") + 1].split(",")
now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None).isoformat(sep=" ")
connection = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
connection.execute("BEGIN TRANSACTION")
for statement in STATEMENTS:
    params = {{name: value for name, value in (("dates", dates), ("now", now)) if "$" + name in statement}}
    connection.execute(statement, params)
connection.execute("COMMIT")
connection.close()
print(f"merged {{len(dates)}} dates into {table}")
'''


def command_script(pipeline, stage_name: str, variant: str) -> str:
    """A standalone job script for a stage: the same statements, run by a process of its own."""
    stage = pipeline.stage(stage_name)
    statements = merge_statements(pipeline, stage_name, **VARIANTS[variant])
    return _SCRIPT.format(statements=json.dumps(statements, indent=1), table=f"{stage.dataset}.{stage.table}")
