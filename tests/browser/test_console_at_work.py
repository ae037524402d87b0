"""The console at work (issue 12): a busy warehouse is waited out, runs are visible everywhere.

Another process holding the DuckDB file is ``lock_holder.py``, released by a signal. Expected
values come from the ledger and the demo recipe (December 7 and 9 of 2021 are its gaps), never
from the page under test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from backfill.ledger import RUN_ACTIVE, Ledger
from tests.browser.conftest import _serve
from tests.lock_holder import warehouse_held

TRACEBACK_WORDS = ("Traceback", "IOException", "_duckdb")
HELD_FOR_S = 10.0
"""How long the other process keeps the file in the waiting journey (issue 12's "Done when")."""


@pytest.fixture
def console_reading_every_rerun(tmp_path_factory):
    """A console of its own that reads the warehouse on every rerun (no reading reused): (URL, settings)."""
    yield from _serve(tmp_path_factory, env={"BACKFILL_CACHE_TTL_S": "0"})


def _page_text(journey) -> str:
    return journey.page.locator("body").inner_text()


def _no_traceback(journey, label: str) -> None:
    text = _page_text(journey)
    shown = [word for word in TRACEBACK_WORDS if word in text]
    journey.check(not shown, label, f"the page shows {shown}")


def test_a_page_loaded_while_another_process_holds_the_warehouse_waits_then_shows_the_figures(
    journey, console_reading_every_rerun
):
    url, settings = console_reading_every_rerun
    with warehouse_held(settings.warehouse):
        held_since = time.monotonic()
        journey.page.goto(url)
        journey.page.get_by_text("Waiting for the warehouse").first.wait_for(timeout=20000)
        _no_traceback(journey, "waiting state while the file is held")
        journey.check(
            journey.page.get_by_text("Monthly coverage").count() == 0,
            "no figures before the warehouse was ever read",
        )
        # The scenario: the other process keeps the file for 10 s (the page retries meanwhile).
        journey.page.wait_for_timeout(max(0.0, HELD_FOR_S - (time.monotonic() - held_since)) * 1000)
        journey.check(
            journey.page.get_by_text("Waiting for the warehouse").count() > 0,
            f"still waiting after {HELD_FOR_S:g} s held",
        )
        _no_traceback(journey, "no traceback from the retries while held")
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

        # A reload during the run: the page finds the run again and shows its progress.
        journey.page.reload()
        journey.page.get_by_role("heading", name=f"Run {run.run_id}").wait_for()
        journey.page.locator('[data-testid="stProgress"]').first.wait_for()
        journey.check(
            journey.page.locator('[data-testid="stProgress"]').count() > 0,
            "a reload shows the run's progress",
        )

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


def test_a_blocked_dates_rerun_with_upstream_ends_at_100_percent(journey, fresh_console_and_settings):
    url, settings = fresh_console_and_settings
    # The demo recipe: MLFS of 2021-12-09 is short, so its predictions are blocked by the gate.
    journey.page.goto(f"{url}/coverage?date=2021-12-09")
    button = journey.page.get_by_role("button", name="Rerun with upstream")
    button.wait_for()
    journey.settle()
    journey.check(button.count() == 1, "the blocked date offers rerun with upstream")
    button.click()
    journey.settle()
    journey.page.get_by_text("Follow the run").click()
    journey.page.get_by_text("Preview and launch").wait_for()
    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    journey.page.get_by_text("succeeded").first.wait_for(timeout=90000)
    journey.settle()
    counts = ledger.item_counts(run.run_id)
    total = sum(counts.values())
    journey.check(counts == {"done": total}, "every item done", str(counts))
    journey.check(
        journey.page.get_by_text(f"{total} of {total} work items finished").count() > 0,
        "the run at 100% on the Backfill page",
    )
    journey.page.goto(f"{url}/coverage?date=2021-12-09")
    journey.page.get_by_text("Date drill-down").wait_for()
    journey.settle()
    journey.check(
        journey.page.get_by_role("button", name="Rerun with upstream").count() == 0,
        "the date is no longer blocked",
    )


def _in_viewport(journey, selector: str) -> bool:
    return journey.page.locator(selector).evaluate(
        "e => { const r = e.getBoundingClientRect(); return r.top >= 0 && r.top < window.innerHeight; }"
    )


def test_a_deep_links_target_is_in_the_viewport(journey, console):
    url, _ = console
    # A gap link of the Overview opens the Coverage drill-down of its date.
    journey.page.goto(f"{url}/coverage?date=2021-12-07")
    target = journey.page.locator("#date-drill-down")
    target.wait_for()
    journey.settle()
    journey.page.wait_for_function(
        "() => { const e = document.getElementById('date-drill-down');"
        " const r = e && e.getBoundingClientRect(); return r && r.top >= 0 && r.top < window.innerHeight; }",
        timeout=15000,
    )
    journey.check(_in_viewport(journey, "#date-drill-down"), "the drill-down is on screen")


# -- selections on the charts -------------------------------------------------------------------


def _hover_to(journey, chart, wanted: str, rows: tuple[float, ...] = (0.5,)) -> tuple[float, float]:
    """The page point over the cell of ``chart`` whose tooltip shows ``wanted`` (found by hovering)."""
    box = chart.bounding_box()
    tooltip = journey.page.locator("#vg-tooltip-element")
    for row in rows:
        y = box["y"] + box["height"] * row
        for x in range(int(box["x"]) + 4, int(box["x"] + box["width"]), 6):
            journey.page.mouse.move(x, y)
            if tooltip.count() and wanted in (tooltip.inner_text() or ""):
                return x, y
    raise AssertionError(f"no cell showing {wanted!r} in the chart")


def _selected_text(journey, expected: str) -> str:
    """The page's Markdown once it shows ``expected`` (the rerun a selection starts may begin after
    ``settle`` looked), or as it is at the deadline; the caller's check says what is missing."""
    with contextlib.suppress(PlaywrightTimeout):
        journey.page.locator('[data-testid="stMarkdownContainer"]').filter(has_text=expected).first.wait_for(
            timeout=20000
        )
    return " ".join(journey.page.locator('[data-testid="stMarkdownContainer"]').all_inner_texts())


def test_a_click_on_a_month_cell_selects_its_gap_dates(journey, fresh_console):
    journey.page.goto(f"{fresh_console}/coverage")
    journey.page.get_by_text("By month").wait_for()
    journey.settle()
    charts = journey.page.locator('[data-testid="stVegaLiteChart"]')
    monthly = charts.nth(1)  # after the colour key
    x, y = _hover_to(journey, monthly, "2021-12")
    journey.page.mouse.click(x, y)
    journey.settle()
    # The demo recipe: December 2021's predictions gaps are the 7th (missing) and the 9th (blocked).
    text = _selected_text(journey, "2 selected: 2021-12-07, 2021-12-09")
    journey.check("2 selected: 2021-12-07, 2021-12-09" in text, "december's gap dates selected", text[-300:])


def test_a_drag_across_weeks_of_the_calendar_selects_their_dates(journey, fresh_console_and_settings):
    from backfill.warehouse.duckdb import DuckDBWarehouse

    url, settings = fresh_console_and_settings
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    try:  # the expected dates, from the warehouse itself: game dates of the weeks of Dec 6 and Dec 13
        played = warehouse.query(
            f"SELECT DISTINCT game_date FROM {{{settings.pipeline.reference.name}}}"
            " WHERE game_date BETWEEN @first AND @last ORDER BY game_date",
            {"first": dt.date(2021, 12, 6), "last": dt.date(2021, 12, 19)},
        )
    finally:
        warehouse.close()
    expected = [day.isoformat() for day in played["game_date"]]

    journey.page.goto(f"{url}/coverage")
    journey.page.get_by_text("By date").wait_for()
    journey.settle()
    calendar = journey.page.locator('[data-testid="stVegaLiteChart"]').nth(2)
    rows = (0.3, 0.4, 0.5, 0.6)
    start = _hover_to(journey, calendar, "2021-12-07", rows)
    end = _hover_to(journey, calendar, "2021-12-14", rows)
    journey.page.mouse.move(*start)
    journey.page.mouse.down()
    journey.page.mouse.move(end[0], end[1], steps=8)
    journey.page.mouse.up()
    journey.settle()
    text = _selected_text(journey, f"{len(expected)} selected:")
    journey.check(
        f"{len(expected)} selected:" in text, "as many dates selected as the weeks had", text[-300:]
    )
    shown = ", ".join(expected[:12]) + (f" (+{len(expected) - 12} more)" if len(expected) > 12 else "")
    journey.check(
        shown in text, "the weeks' dates listed (the first twelve, then how many more)", text[-300:]
    )


# -- the Overview at a glance ----------------------------------------------------------------------

CUT_TEXT = """() => [...document.querySelectorAll('[data-testid="stMain"] *')]
    .filter(e => e.children.length === 0 && e.innerText && e.scrollWidth > e.clientWidth + 1)
    .map(e => e.innerText.slice(0, 80))"""
"""Texts of the main area's leaf elements that do not fit their box (drawn cut or with an ellipsis)."""


def test_the_overview_at_1024_px_shows_the_worst_month_first_coloured_and_cuts_nothing(journey, console):
    url, _ = console
    journey.page.set_viewport_size({"width": 1024, "height": 900})
    journey.page.goto(url)
    worst = journey.page.locator('[data-testid="stTable"]').filter(has_text="Gap dates")
    worst.wait_for()
    journey.settle()
    # The demo recipe: December 2021 lost every prediction of Dec 7 (missing) and some MLFS rows of
    # Dec 9 (partial); missing is the worse.
    rows = worst.locator("tbody tr")
    first = rows.first.locator("td, th").all_inner_texts()
    journey.check(first[:3] == ["2021-12", "Predictions", "missing"], "the worst month first", str(first))
    journey.check(rows.count() == 2, "one row per stage with a gap", str(rows.count()))
    status = rows.first.locator("td, th").nth(2)
    colour = status.evaluate("e => getComputedStyle(e).backgroundColor")
    journey.check(colour not in ("rgba(0, 0, 0, 0)", "transparent"), "the status on its colour", colour)
    journey.check("None" not in worst.inner_text(), "no raw None")
    cut = journey.page.evaluate(CUT_TEXT)
    journey.check(cut == [], "nothing cut at 1024 px", str(cut))
