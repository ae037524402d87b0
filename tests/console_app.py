"""Shared pieces of the Backfill and Runs page tests: the console on a private demo copy and ledger,
following a detached run by rerunning the page, and reading element texts."""

from __future__ import annotations

import os
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

from backfill.config import Settings
from backfill.ledger import RUN_ACTIVE, Ledger

APP = Path(__file__).resolve().parents[1] / "app.py"
LOCAL_USER = "local-tester"
FINAL_WITHIN_S = 60


def console_app(settings: Settings, tmp_path: Path, monkeypatch) -> AppTest:
    """The console on the private demo copy and ledger of ``settings``, no retry delays, acting as
    ``LOCAL_USER``, and nothing from the developer's environment."""
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BACKFILL_CONFIG", os.devnull)
    monkeypatch.setenv("BACKFILL_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("BACKFILL_LEDGER", settings.ledger)
    monkeypatch.setenv("BACKFILL_RETRY_DELAYS", "0,0,0")
    monkeypatch.setenv("BACKFILL_USER", LOCAL_USER)
    # One cache period for the whole test: a page rerun during a run then reads no warehouse.
    monkeypatch.setenv("BACKFILL_CACHE_TTL_S", "3600")
    return AppTest.from_file(str(APP), default_timeout=60)


def follow_to_the_end(at: AppTest, ledger: Ledger, run_id: str) -> str:
    """Rerun the page every half second until the run is over; returns its final status."""
    deadline = time.monotonic() + FINAL_WITHIN_S
    while ledger.get_run(run_id).status in RUN_ACTIVE and time.monotonic() < deadline:
        time.sleep(0.5)
        at.run()
        assert not at.exception
    at.run()  # the page sees the end: drops cached figures and redraws
    return ledger.get_run(run_id).status


def texts(elements) -> str:
    """The values of some elements (markdown, captions, alerts) in one string."""
    return " | ".join(element.value for element in elements)
