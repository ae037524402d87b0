"""No stranded work (SPEC 8.2, 8.3): however a run ends, every item ends done, skipped, failed,
blocked or cancelled, a bad setting is refused before anything is written, and a busy warehouse
is a wait. Each test reproduces a defect an outside test of the engine found."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from backfill import launch
from backfill.ledger import ITEM_OPEN, Ledger
from backfill.request import BackfillRequest
from backfill.runner import create_run, execute_run
from tests.faulty import FaultyWarehouse

ROOT = Path(__file__).resolve().parents[1]
TODAY = lambda: dt.date(2026, 11, 30)  # noqa: E731
DEC_1, DEC_15, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 15), dt.date(2021, 12, 31)
FINAL = {"done", "skipped", "failed", "blocked", "cancelled"}

HOLD_FILE = """
import duckdb, signal, sys, time
database = duckdb.connect(sys.argv[1])  # the write lock on the file
print("holding", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:  # another process, busy with the file for a while
    time.sleep(0.05)
database.close()
"""


def cli(settings, *args: str, **extra: str) -> subprocess.CompletedProcess:
    env = (
        os.environ
        | {
            "PYTHONPATH": str(ROOT),
            "BACKFILL_WAREHOUSE": settings.warehouse,
            "BACKFILL_LEDGER": settings.ledger,
            "BACKFILL_CONFIG": os.devnull,
            "BACKFILL_RETRY_DELAYS": "0,0,0",
        }
        | extra
    )
    env.pop("BACKFILL_PIPELINE", None)
    return subprocess.run(
        [sys.executable, "-m", "backfill", *args], env=env, capture_output=True, text=True, timeout=300
    )


def hold(path: str, seconds: float) -> subprocess.Popen:
    """Another process that holds the DuckDB file for ``seconds`` (returns once it holds it)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_FILE, path, str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline() == "holding\n"
    return holder


@pytest.mark.slow
def test_a_run_started_while_another_process_holds_the_duckdb_file_for_5_s_completes(settings):
    holder = hold(settings.warehouse, 5.0)
    try:
        done = cli(settings, "run", "--dates", "2021-12-07", "--stages", "predictions")
    finally:
        holder.wait(timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    (run,) = Ledger(settings.ledger).list_runs()
    assert run.status == "succeeded"


def test_an_error_while_measuring_fails_that_windows_items_and_the_run_goes_on(settings):
    class MeasureFails(FaultyWarehouse):
        def _query(self, statements, params, **options):
            if params.get("start", DEC_1) <= DEC_15 <= params.get("end", DEC_1) and "flags" in statements[0]:
                raise RuntimeError("injected: the coverage query of the window with Dec 15 failed")
            return super()._query(statements, params, **options)

    warehouse = MeasureFails(settings, settings.warehouse)
    request = BackfillRequest.build(settings, start=DEC_1, end=DEC_31, batch_size=10, today=TODAY)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, "tester")
    result = execute_run(run_id, warehouse, settings, ledger)
    items = ledger.items(run_id)
    assert {item["status"] for item in items} <= FINAL and not ledger.items(run_id, ITEM_OPEN)
    window = {day.isoformat() for day in request.dates[10:20]}  # batches of 10: Dec 11..20
    failed = {item["game_date"] for item in items if item["status"] == "failed"}
    assert failed == window
    assert {item["error_class"] for item in items if item["status"] == "failed"} == {"permanent"}
    assert result.status == "failed"
    # What failed can be picked up again.
    rerun = launch.rerun_request(ledger, run_id, settings.pipeline)
    assert {day.isoformat() for day in rerun.dates} == window


def test_cancelling_a_queued_run_is_honoured_and_nothing_is_written(settings, demo):
    before = Path(settings.warehouse).read_bytes()
    demo.close()
    request = BackfillRequest.build(settings, dates=["2021-12-07"], today=TODAY)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, demo, request, "tester")
    launch.cancel(settings, run_id, "tester")
    result = execute_run(run_id, demo, settings, ledger)
    demo.close()
    assert result.status == "cancelled"
    assert {item["status"] for item in ledger.items(run_id)} == {"cancelled"}
    assert Path(settings.warehouse).read_bytes() == before


def test_demo_refuses_a_warehouse_with_an_active_run(settings, demo):
    request = BackfillRequest.build(settings, dates=["2021-12-07"], today=TODAY)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, demo, request, "tester")
    ledger.start_run(run_id)  # running, in this (live) process
    demo.close()
    before = Path(settings.warehouse).read_bytes()
    done = cli(settings, "demo", "--warehouse", settings.warehouse)
    assert done.returncode == 2
    assert f"run {run_id} (started by tester) is running" in done.stderr and done.stderr.count("\n") == 1
    assert Path(settings.warehouse).read_bytes() == before


@pytest.mark.parametrize(
    ("args", "extra", "message"),
    [
        (
            ("run", "--dates", "2021-12-07", "--retry-delays", "nan,1"),
            {},
            "retry delays must be between 0 and 3600",
        ),
        (
            ("run", "--dates", "2021-12-07"),
            {"BACKFILL_RETRY_DELAYS": "nan"},
            "setting retry_delays has an invalid value",
        ),
        (("coverage",), {"BACKFILL_CONFIG": "/no/such/backfill.toml"}, "config file /no/such/backfill.toml"),
        (("runs", "--limit", str(10**30)), {}, "--limit must be between 1 and 10000"),
    ],
)
def test_bad_settings_are_refused_in_one_line_with_exit_2_and_nothing_written(settings, args, extra, message):
    before = Path(settings.warehouse).read_bytes()
    done = cli(settings, *args, **extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert not Path(settings.ledger).exists()  # not even an empty ledger
    assert Path(settings.warehouse).read_bytes() == before


READ_WHILE_RUNNING = """
import duckdb, sys, time
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    try:
        database = duckdb.connect(sys.argv[1], read_only=True)
    except duckdb.IOException:
        time.sleep(0.005)
        continue
    print(database.execute("SELECT COUNT(*) FROM nba_analytics.player_game_summary").fetchone()[0], flush=True)
    sys.stdin.readline()  # holds the file until told: the test looks at the run meanwhile
    database.close()
    break
"""


@pytest.mark.slow
def test_a_long_run_frees_the_duckdb_file_every_so_often_for_readers_that_do_not_say_they_wait(settings):
    # A raw DuckDB reader marks nothing (tests/test_reader_turn.py has the console's way): it gets in
    # when the run frees the file on its own, every release_every_s (here 1 s), between batches.
    with duckdb.connect(settings.warehouse, read_only=True) as database:
        rows = database.execute("SELECT COUNT(*) FROM nba_analytics.player_game_summary").fetchone()[0]
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_RELEASE_EVERY_S": "1",
    }
    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backfill",
            "run",
            "--start",
            "2021-11-01",
            "--end",
            "2022-01-31",
            "--batch-size",
            "1",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Wait for the run to hold the file (it is running), then read while it works.
        ledger = Ledger(settings.ledger)
        deadline = time.monotonic() + 60
        while not (ledger.exists() and ledger.list_runs() and ledger.list_runs()[0].status == "running"):
            assert time.monotonic() < deadline and run.poll() is None, "the run never started"
            time.sleep(0.02)
        reader = subprocess.Popen(
            [sys.executable, "-c", READ_WHILE_RUNNING, settings.warehouse],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        counted = reader.stdout.readline().strip()  # the reader is in, and holds the file
        # Items still open while the reader holds the file: it got in between batches, not after the
        # run's last one (the process lingers a moment after that, so "still running" proves nothing).
        (run_record,) = ledger.list_runs()
        left = sum(n for status, n in ledger.item_counts(run_record.run_id).items() if status in ITEM_OPEN)
        _, reader_err = reader.communicate(input="\n", timeout=60)
    finally:
        out, err = run.communicate(timeout=300)
    assert counted == str(rows), reader_err
    assert left > 0, "the reader only got in after the run's last batch"
    assert run.returncode == 0, out + err
