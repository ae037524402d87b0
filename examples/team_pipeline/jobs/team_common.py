"""What the team's backfill jobs share: their arguments, the warehouse, and the lines they print.

The jobs are the team's, not the console's: they import nothing from the console's ``backfill``
package and work the same when launched by hand::

    python jobs/ml_feature_store_backfill.py --dates 2021-12-01,2021-12-02 --warehouse data/warehouse.duckdb

When the console runs them it passes the dates in ``--dates`` and the warehouse in
``BACKFILL_WAREHOUSE`` (with ``BACKFILL_RUN_ID``, ``BACKFILL_STAGE`` and ``BACKFILL_DATES``), reads
their output line by line into the run's log, and takes ``{"date": ..., "status": ...}`` lines as
their own account of each date (it verifies the dates afterwards anyway).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import NoReturn

import duckdb

LOCK_WAIT_S = float(os.environ.get("TEAM_JOB_LOCK_WAIT_S", "120"))
"""How long a job waits for another process (the console, another job) to let go of the DuckDB file."""

JOB_SECONDS = float(os.environ.get("TEAM_JOB_SECONDS", "0"))
"""Seconds each job spends before it writes, as a remote warehouse job would (the benchmark sets it to
measure how batches run side by side; 0 by default)."""

SEASON_SQL = "(year(game_date) - CASE WHEN month(game_date) < 8 THEN 1 ELSE 0 END)"
"""The season (its starting year) of ``game_date``: seasons run from August 1 to July 31."""


def parser(description: str) -> argparse.ArgumentParser:
    """The arguments every job takes: ``--dates`` and, optionally, ``--warehouse``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dates", required=True, help="game dates, comma-separated YYYY-MM-DD")
    parser.add_argument(
        "--warehouse", default=None, help="DuckDB file to write (default: the BACKFILL_WAREHOUSE variable)"
    )
    return parser


def parse_dates(parser: argparse.ArgumentParser, text: str) -> list[dt.date]:
    """The dates of ``--dates``, sorted, without repeats; a usage error (exit 2) otherwise."""
    dates = set()
    for item in text.split(","):
        if not item.strip():
            continue
        try:
            dates.add(dt.date.fromisoformat(item.strip()))
        except ValueError:
            parser.error(f"--dates: {item.strip()!r} is not a YYYY-MM-DD date")
    if not dates:
        parser.error("--dates: no date given")
    return sorted(dates)


def warehouse_path(given: str | None) -> str:
    """The DuckDB file from ``--warehouse`` or ``BACKFILL_WAREHOUSE``; exit 2 with a one-line reason otherwise."""
    path = given or os.environ.get("BACKFILL_WAREHOUSE")
    if not path:
        refuse("no warehouse: give --warehouse FILE or set BACKFILL_WAREHOUSE")
    if path.startswith("bigquery://"):
        refuse(f"this example job writes DuckDB files only, not {path} (the team's real jobs write BigQuery)")
    if not Path(path).is_file():
        refuse(f"warehouse file {path} does not exist")
    return path


def refuse(reason: str) -> NoReturn:
    """Stop before any write: one line on stderr, exit 2."""
    print(f"error: {reason}", file=sys.stderr, flush=True)
    sys.exit(2)


def connect(path: str, job: str, wait_s: float = LOCK_WAIT_S) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, waiting (up to ``wait_s``) while another process holds its lock."""
    if JOB_SECONDS > 0:
        time.sleep(JOB_SECONDS)  # the job's own work, elsewhere (TEAM_JOB_SECONDS)
    deadline = time.monotonic() + wait_s
    told = False
    while True:
        try:
            connection = duckdb.connect(path)
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() >= deadline:
                raise
            if not told:
                progress(job, f"the warehouse is busy (another process holds it); waiting up to {wait_s:g} s")
                told = True
            time.sleep(random.uniform(0.1, 0.4))
            continue
        connection.execute("SET TimeZone = 'UTC'")
        return connection


def season_start(day: dt.date) -> dt.date:
    """First day of the season of ``day``: where every look-back starts."""
    return dt.date(day.year if day.month >= 8 else day.year - 1, 8, 1)


def progress(job: str, message: str) -> None:
    """A progress line (the console shows it in the run's log)."""
    print(f"[{job}] {message}", flush=True)


def outcome(day: dt.date, status: str, **details: object) -> None:
    """The job's own account of one date: ``done`` or ``failed`` (with ``error``)."""
    print(json.dumps({"date": day.isoformat(), "status": status, **details}), flush=True)


def maybe_time_out(job: str, dates: list[dt.date]) -> None:
    """Fail like the team's BigQuery jobs now and then did, on purpose, for demos and tests.

    With ``TEAM_JOB_FLAKY_FIRST=1`` the first attempt at each batch (same run, same dates) fails with
    the team's timeout; the next attempt goes through. A marker file per batch, in
    ``TEAM_JOB_FLAKY_DIR`` (default: a folder in the system's temp dir), remembers the first attempt.
    """
    if os.environ.get("TEAM_JOB_FLAKY_FIRST") != "1":
        return
    run_id = os.environ.get("BACKFILL_RUN_ID", "by-hand")
    key = hashlib.sha256(f"{run_id}|{job}|{','.join(map(str, dates))}".encode()).hexdigest()[:20]
    folder = Path(os.environ.get("TEAM_JOB_FLAKY_DIR") or Path(tempfile.gettempdir()) / "team-job-flaky")
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / key
    try:
        marker.touch(exist_ok=False)
    except FileExistsError:
        return  # not the first attempt at this batch
    # One line, as the team's logs show it: the console classifies the last lines of a failed job.
    print(
        "google.api_core.exceptions.DeadlineExceeded: 504 Deadline Exceeded (the query job timed out)",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(1)


def merge_sql(target: str, key: tuple[str, ...], columns: tuple[str, ...], source: str) -> str:
    """The team's MERGE: update rows whose key matches, insert the others. Rows of the target that
    the source does not have (orphans) and extra rows of a key (duplicates) stay as they were."""
    on = " AND ".join(f"t.{column} = s.{column}" for column in key)
    updates = ", ".join(f"{column} = s.{column}" for column in columns if column not in key)
    values = ", ".join(f"s.{column}" for column in columns)
    return (
        f"MERGE INTO {target} AS t USING {source} AS s ON {on} "
        f"WHEN MATCHED THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({values})"
    )


def write_batch(
    connection: duckdb.DuckDBPyConnection,
    job: str,
    select_sql: str,
    params: dict,
    target: str,
    key: tuple[str, ...],
    columns: tuple[str, ...],
) -> dict[dt.date, int]:
    """Compute the batch's rows (one set-based SELECT) and MERGE them, in one transaction; rows per date."""
    connection.execute("BEGIN TRANSACTION")
    try:
        connection.execute(f"CREATE OR REPLACE TEMP TABLE batch_rows AS {select_sql}", params)
        per_date = dict(
            connection.execute("SELECT game_date, COUNT(*) FROM batch_rows GROUP BY game_date").fetchall()
        )
        progress(job, f"merging {sum(per_date.values()):,} rows into {target}")
        connection.execute(merge_sql(target, key, columns, "batch_rows"))
        connection.execute("DROP TABLE batch_rows")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return per_date


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
