"""The console at work (issue 12): a busy warehouse is waited out, runs are visible everywhere.

Another process holding the DuckDB file is ``lock_holder.py``, released by a signal. Expected
values come from the ledger and the demo recipe (December 7 and 9 of 2021 are its gaps), never
from the page under test.
"""

from __future__ import annotations

from backfill.ledger import RUN_ACTIVE, Ledger
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


def _type_dates(journey, text: str) -> None:
    journey.page.get_by_text("Typed dates", exact=True).click()
    journey.settle()
    typed = journey.page.get_by_role("textbox", name="Dates", exact=True)
    typed.fill(text)
    typed.press("Enter")
    journey.settle()


def test_a_new_tab_during_a_run_shows_its_progress_and_an_overlapping_launch_is_refused_naming_the_holder(
    browser, journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    ledger = Ledger(settings.ledger)
    journey.page.goto(url)
    journey.page.get_by_text("Monthly coverage").wait_for()
    journey.settle()
    journey.page.locator('[data-testid="stSidebarNav"]').get_by_text("Backfill", exact=True).click()
    journey.page.get_by_text("Preview and launch").wait_for()
    journey.settle()
    _type_dates(journey, "2021-12-07")

    # The warehouse held by another process keeps the run active while the new tab looks at it.
    with warehouse_held(settings.warehouse):
        journey.page.get_by_role("button", name="Launch backfill").click()
        journey.settle()
        (run,) = [run for run in ledger.list_runs() if run.status in RUN_ACTIVE]

        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            other = journey.__class__(context.new_page(), journey.name + "-new-tab")
            other.page.set_default_timeout(30000)
            other.page.goto(f"{url}/backfill")
            other.page.get_by_role("heading", name=f"Run {run.run_id}").wait_for()
            other.settle()
            other.page.locator('[data-testid="stProgress"]').first.wait_for()
            other.check(
                other.page.locator('[data-testid="stProgress"]').count() > 0,
                "the new tab follows the active run",
            )
            badge = other.page.locator('[data-testid="stSidebar"] a').filter(has_text=run.created_by)
            other.check(
                badge.count() > 0 and f"run={run.run_id}" in (badge.first.get_attribute("href") or ""),
                "the sidebar badge links the run and names who started it",
            )
            _type_dates(other, "2021-12-07")
            refusal = other.page.get_by_text(f"held by run {run.run_id}")
            refusal.first.wait_for()
            other.check(
                f"started by {run.created_by}" in refusal.first.inner_text(),
                "overlap named before launching",
                refusal.first.inner_text(),
            )
            other.check(
                other.page.get_by_role("button", name="Launch backfill").is_disabled(),
                "launch refused before it starts",
            )
            runs_before = len(ledger.list_runs())
        except BaseException:
            context.close()
            raise
    try:
        other.page.get_by_text("succeeded").first.wait_for(timeout=90000)
        other.settle()
        final = ledger.get_run(run.run_id)
        counts = ledger.item_counts(run.run_id)
        total = sum(counts.values())
        other.check(final.status == "succeeded", "the run ends", str(final.status))
        other.check(
            other.page.get_by_text(f"{total} of {total} work items finished").count() > 0,
            "its progress at 100% in the new tab",
        )
        other.check(len(ledger.list_runs()) == runs_before, "no refused run was recorded")
    finally:
        context.close()
