"""Kill a backfill process with SIGKILL at named points, then resume it (SPEC 5, fault bars).

Every date must be either exactly as before or fully replaced after the crash, and the resumed run
must finish only what was left.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from backfill import coverage, launch, stale
from backfill.ledger import Ledger

ROOT = Path(__file__).resolve().parent.parent
DEC_1, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 31)

BACKFILL_DECEMBER = """
from backfill.config import load_settings
from backfill.launch import run_here
from backfill.request import BackfillRequest
settings = load_settings()
request = BackfillRequest.build(settings, start="2021-12-01", end="2021-12-31")
print(run_here(settings, request, "tester").status)
"""


def environment(settings, **extra) -> dict:
    return (
        os.environ
        | {
            "PYTHONPATH": str(ROOT),
            "BACKFILL_WAREHOUSE": settings.warehouse,
            "BACKFILL_LEDGER": settings.ledger,
            "BACKFILL_RETRY_DELAYS": "0,0,0",
            "BACKFILL_BATCH_SIZE": "8",
        }
        | extra
    )


def snapshot(
    path: str, first: dt.date = DEC_1, last: dt.date = DEC_31
) -> dict[tuple[str, dt.date], pd.DataFrame]:
    """Rows of every date of both stages (December unless told), keyed by (table, date)."""
    connection = duckdb.connect(path, read_only=True)
    try:
        tables = {
            "mlfs": "SELECT * FROM nba_precompute.ml_feature_store",
            "pred": "SELECT * FROM nba_predictions.player_prop_predictions",
        }
        result = {}
        for name, sql in tables.items():
            frame = connection.execute(f"{sql} WHERE game_date BETWEEN ? AND ?", [first, last]).df()
            frame["game_date"] = pd.to_datetime(frame["game_date"]).dt.date
            for day, rows in frame.groupby("game_date"):
                result[(name, day)] = rows.sort_values(list(rows.columns)[:3]).reset_index(drop=True)
        return result
    finally:
        connection.close()


def assert_each_date_as_before_or_fully_replaced(before, after, crash_started: pd.Timestamp) -> set:
    """Returns the (table, date) pairs that were replaced."""
    replaced = set()
    for key in set(before) | set(after):
        old, new = before.get(key), after.get(key)
        if old is not None and new is not None and old.equals(new):
            continue
        stamp = "processed_at" if key[0] == "mlfs" else "created_at"
        assert new is not None, f"{key} lost its rows"
        assert (new[stamp] >= crash_started).all(), f"{key} is a mix of old and new rows"
        replaced.add(key)
    return replaced


@pytest.mark.slow
@pytest.mark.parametrize("point", ["before_replace", "in_transaction", "after_replace", "after_replace:3"])
def test_killed_backfill_leaves_dates_whole_and_resume_finishes_it(settings, point):
    before = snapshot(settings.warehouse)
    started = pd.Timestamp.now(tz="UTC")
    crashed = subprocess.run(
        [sys.executable, "-c", BACKFILL_DECEMBER],
        env=environment(settings, BACKFILL_CRASH_AT=point),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert crashed.returncode == -9, crashed.stderr

    replaced = assert_each_date_as_before_or_fully_replaced(before, snapshot(settings.warehouse), started)
    if point.startswith("after_replace"):
        assert replaced  # the committed batch is whole
    else:
        assert not replaced  # nothing committed: every date as before

    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    assert run.status == "running"
    assert ledger.detect_interrupted() == [run.run_id]
    assert ledger.get_run(run.run_id).status == "interrupted"
    finished_before = {
        (item["stage"], item["game_date"]): item["finished_at"] for item in ledger.items(run.run_id, ["done"])
    }
    if point == "after_replace:3":
        assert len(finished_before) == 16  # the first batch of 8 dates, both stages

    result = launch.resume(settings, run.run_id, "tester", sleep=lambda seconds: None)
    assert result.status == "succeeded"
    # Resume did only unfinished work: items done before the crash were not redone.
    for item in ledger.items(run.run_id, ["done"]):
        key = (item["stage"], item["game_date"])
        if key in finished_before:
            assert item["finished_at"] == finished_before[key]

    from backfill.warehouse.duckdb import DuckDBWarehouse

    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    figures = coverage.monthly_coverage(warehouse, settings, DEC_1, DEC_31).set_index("stage")
    assert (figures["expected_coverage_pct"] == 100.0).all()
    assert stale.stale_counts(warehouse, settings, DEC_1, DEC_31).empty


@pytest.mark.slow
def test_a_warehouse_lock_held_by_another_process_is_waited_out(settings, tmp_path):
    # The holder keeps the file until told; it is told only once the backfill has said it waits, so
    # the test proves the wait by the order of events, not by the clock.
    release = tmp_path / "release"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, pathlib, time\n"
         f"c = duckdb.connect({settings.warehouse!r})\nprint('holding', flush=True)\n"
         f"deadline = time.monotonic() + 60\n"
         f"while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:\n"
         "    time.sleep(0.02)"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert holder.stdout.readline().strip() == "holding"
    backfill = subprocess.Popen(
        [sys.executable, "-c", BACKFILL_DECEMBER],
        env=environment(settings, BACKFILL_RETRY_DELAYS="0.2", BACKFILL_MAX_ATTEMPTS="200"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    told = []
    for line in backfill.stderr:  # ends when the backfill does, whatever happens
        told.append(line)
        if "another process holds it" in line:
            break
    release.touch()
    holder.wait(timeout=60)
    out, rest = backfill.communicate(timeout=120)
    finished = subprocess.CompletedProcess(backfill.args, backfill.returncode, out, "".join(told) + rest)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "succeeded"
    assert "another process holds it" in finished.stderr  # the wait is told, not hidden
    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    items = ledger.items(run.run_id)
    assert {item["status"] for item in items} <= {"done", "skipped"}
    assert not any(item["error_class"] for item in items)  # waited out, not a failure


KILLS = 10
"""Random kills of one multi-month run; the deterministic crash points above cover each step."""

BACKFILL_MONTHS = """
import sys
from backfill.config import load_settings
from backfill.launch import run_here
from backfill.request import BackfillRequest
settings = load_settings()
print("started", flush=True)
request = BackfillRequest.build(settings, start=sys.argv[1], end=sys.argv[2])
print(run_here(settings, request, "tester").status)
"""


@pytest.mark.slow
def test_sigkill_at_random_moments_of_a_multi_month_backfill_then_resume_leaves_old_or_new(settings):
    import random

    first, last = "2021-12-01", "2022-01-31"
    rng = random.Random(20211207)
    ledger = Ledger(settings.ledger)
    killed = 0
    for _ in range(KILLS):
        before = snapshot(settings.warehouse, dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        started = pd.Timestamp.now(tz="UTC")
        process = subprocess.Popen(
            [sys.executable, "-c", BACKFILL_MONTHS, first, last],
            env=environment(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline() == "started\n"
        time.sleep(rng.uniform(0.0, 1.5))  # the fault: a kill at a random moment of the run
        process.kill()
        process.communicate(timeout=60)
        killed += process.returncode == -9
        after = snapshot(settings.warehouse, dt.date.fromisoformat(first), dt.date.fromisoformat(last))
        assert_each_date_as_before_or_fully_replaced(before, after, started)
        ledger.detect_interrupted()
        for run in ledger.list_runs(limit=5):
            if run.status in ("interrupted", "queued"):
                result = launch.resume(settings, run.run_id, "tester", sleep=lambda seconds: None)
                assert result.status == "succeeded", result
                assert not ledger.items(run.run_id, ["pending", "running"])
    assert killed >= KILLS // 2  # most kills landed while the run was still working

    from backfill.warehouse.duckdb import DuckDBWarehouse

    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    figures = coverage.daily_coverage(warehouse, settings, start, end)
    assert set(figures["status"]) <= {"ok", "bootstrap", "no_games"}
    assert stale.stale_counts(warehouse, settings, start, end).empty
    warehouse.close()
