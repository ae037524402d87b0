"""The console at work (issue 12): a busy warehouse is waited out, never a traceback.

Another process holding the DuckDB file is ``lock_holder.py``, released by a signal. Expected
values come from the ledger and the demo recipe (December 7 and 9 of 2021 are its gaps), never
from the page under test.
"""

from __future__ import annotations

from tests.lock_holder import warehouse_held

TRACEBACK_WORDS = ("Traceback", "IOException", "_duckdb")


def _page_text(journey) -> str:
    return journey.page.locator("body").inner_text()


def _no_traceback(journey, label: str) -> None:
    text = _page_text(journey)
    shown = [word for word in TRACEBACK_WORDS if word in text]
    journey.check(not shown, label, f"the page shows {shown}")


def test_a_page_loaded_while_another_process_holds_the_warehouse_waits_then_shows_the_figures(
    journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    with warehouse_held(settings.warehouse):
        journey.page.goto(url)
        journey.page.get_by_text("Waiting for the warehouse").first.wait_for(timeout=20000)
        _no_traceback(journey, "waiting state while the file is held")
        journey.check(
            journey.page.get_by_text("Monthly coverage").count() == 0,
            "no figures before the warehouse was ever read",
        )
    # Released: the page retries by itself (no reload) and draws the figures.
    journey.page.get_by_text("Monthly coverage").wait_for(timeout=30000)
    journey.settle()
    cells = journey.grid_text("2021-12")
    journey.check("2021-12" in cells, "figures after the release", str(cells[:12]))
    journey.check(journey.page.get_by_text("Data as of").count() > 0, "the sidebar says when data was read")
    _no_traceback(journey, "no traceback after the release")

    # Figures read once stay on screen (with their time) while the file is held again.
    with warehouse_held(settings.warehouse):
        journey.page.reload()
        journey.page.get_by_text("Waiting for the warehouse").first.wait_for(timeout=20000)
        journey.page.get_by_text("Monthly coverage").wait_for(timeout=20000)
        journey.check(
            journey.page.get_by_text("Showing data as of").count() > 0, "last good figures, with their time"
        )
        _no_traceback(journey, "last good figures while held")
    journey.page.get_by_text("Waiting for the warehouse").first.wait_for(state="detached", timeout=30000)
    journey.check(journey.page.get_by_text("Monthly coverage").count() > 0, "figures once free again")
