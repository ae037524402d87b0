"""A reader waiting for an embedded warehouse file gets it between a backfill's windows (issue 13).

DuckDB lets one process open a file for writing and keeps no queue of waiters, so a backfill that
closed and reopened the file between windows let a reader in only if the reader happened to try in
that instant. A waiting reader now marks that it waits; the backfill makes way at its next window.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from backfill import coverage
from backfill.ledger import ITEM_OPEN, Ledger
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.test_crash_resume import environment

BACKFILL_SEASON = """
from backfill.config import load_settings
from backfill.launch import run_here
from backfill.request import BackfillRequest
settings = load_settings()
request = BackfillRequest.build(settings, start="{start}", end="{end}")
print(run_here(settings, request, "tester").status)
"""

STARTED_WITHIN_S = 60.0


def _open_items(ledger: Ledger) -> int | None:
    """Items of the (one) run not finished yet; None before the run has finished any."""
    runs = ledger.list_runs() if ledger.exists() else []
    if not runs:
        return None
    counts = ledger.item_counts(runs[0].run_id)
    if not counts.get("done"):
        return None
    return sum(n for status, n in counts.items() if status in ITEM_OPEN)


@pytest.mark.slow
def test_a_reader_waiting_for_the_file_gets_it_at_the_end_of_a_window_not_of_the_run(settings, demo):
    first, last = coverage.data_bounds(demo)
    demo.close()
    # The whole season in windows of two dates: many windows, each a fraction of a second.
    backfill = subprocess.Popen(
        [sys.executable, "-c", BACKFILL_SEASON.format(start=first, end=last)],
        env=environment(settings, BACKFILL_BATCH_SIZE="2"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ledger = Ledger(settings.ledger)
    deadline = time.monotonic() + STARTED_WITHIN_S
    while _open_items(ledger) is None and backfill.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # polled: the run has finished its first window
    assert _open_items(ledger), "the run ended (or never started) before the reader tried"

    # As the console reads: open (waiting for the holder), read, close.
    reader = DuckDBWarehouse(settings, settings.warehouse, lock_wait_s=STARTED_WITHIN_S)
    players = reader.query("SELECT COUNT(*) AS n FROM nba_analytics.player_game_summary")["n"].iloc[0]
    still_open = _open_items(ledger)
    reader.close()

    out, err = backfill.communicate(timeout=120)
    assert backfill.returncode == 0, err
    assert out.strip() == "succeeded"
    assert players > 0
    # The reader got in while the run still had dates to do, and the run says it made way.
    assert still_open, "the reader got the file only when the run had finished"
    (run,) = ledger.list_runs()
    assert any("waiting reader" in event["message"] for event in ledger.events(run.run_id, limit=10_000))
