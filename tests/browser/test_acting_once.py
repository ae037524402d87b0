"""Actions act once, on fresh figures (issue 23): a double click launches one run, your own new run
is never "held by" against you, and a rerun's end shows on the page without a reload.

Runs are counted with SQL of the test's own on the ledger file; the dates are the demo recipe's
December gaps (2021-12-07 missing, 2021-12-09 blocked by the MLFS gate)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

import duckdb

from tests.browser.conftest import ROOT
from tests.browser.test_console_at_work import _hover_to, _selected_text, _type_dates
from tests.lock_holder import warehouse_held

FINISH_MS = 90000


def _runs(ledger_path: str) -> list[tuple[str, str]]:
    with sqlite3.connect(ledger_path) as connection:
        return connection.execute("SELECT run_id, status FROM runs ORDER BY created_at").fetchall()


def test_a_double_click_on_launch_launches_one_run_and_none_is_held_against_you(
    journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    journey.page.goto(f"{url}/backfill")
    journey.page.get_by_text("Preview and launch").wait_for()
    journey.settle()
    _type_dates(journey, "2021-12-07")
    journey.page.get_by_role("button", name="Launch backfill").dblclick()
    journey.page.get_by_text("Launched run").first.wait_for()
    journey.settle()
    runs = _runs(settings.ledger)
    journey.check(len(runs) == 1, "one run for a double click", str(runs))
    journey.check(journey.page.get_by_text("held by").count() == 0, "your own run is not 'held by'")
    journey.check(
        journey.page.get_by_role("button", name="Launch backfill").is_disabled(), "launch is done: disabled"
    )
    journey.page.get_by_text("succeeded").first.wait_for(timeout=FINISH_MS)
    journey.settle()
    journey.check(_runs(settings.ledger) == [(runs[0][0], "succeeded")], "still one run, succeeded")


def test_rerun_with_upstream_double_clicked_launches_once_and_the_drill_down_follows_its_end(
    journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    journey.page.goto(f"{url}/coverage?date=2021-12-09")
    button = journey.page.get_by_role("button", name="Rerun with upstream")
    button.wait_for()
    journey.settle()
    button.dblclick()
    journey.page.get_by_text("Launched run").first.wait_for()
    journey.settle()
    runs = _runs(settings.ledger)
    journey.check(len(runs) == 1, "one run for a double click", str(runs))
    # No reload and no navigation: when the run ends the page reads the warehouse again by itself.
    journey.page.get_by_role("button", name="Rerun with upstream").wait_for(
        state="detached", timeout=FINISH_MS
    )
    journey.settle()
    journey.check(
        _runs(settings.ledger) == [(runs[0][0], "succeeded")],
        "the run succeeded",
        str(_runs(settings.ledger)),
    )
    journey.check(
        journey.page.get_by_text("Predictions ok: 100.0%").count() > 0,
        "the drill-down shows the date's new figures",
    )


def test_the_runs_table_opens_a_run_by_clicking_its_row(journey, fresh_console_and_settings):
    url, settings = fresh_console_and_settings
    # Two runs recorded through the CLI: the older one is to be opened from the table.
    environment = {
        **os.environ,
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_RETRY_DELAYS": "0,0,0",
        "PYTHONPATH": str(ROOT),
    }
    for day in ("2021-12-07", "2021-12-15"):
        subprocess.run(
            [sys.executable, "-m", "backfill", "run", "--dates", day, "--stages", "mlfs"],
            cwd=ROOT, env=environment, capture_output=True, check=True,
        )  # fmt: skip
    older, newer = [run_id for run_id, _ in _runs(settings.ledger)]
    journey.page.goto(f"{url}/runs")
    journey.page.get_by_role("heading", name=f"Run {newer}").wait_for()  # the newest is shown first
    journey.settle()
    table = journey.page.locator('[data-testid="stDataFrame"]').first
    box = table.bounding_box()
    # Rows in newest-first order: the second row is the older run; its row marker is at the left.
    journey.page.mouse.click(box["x"] + 18, box["y"] + 35 + 35 + 17)
    journey.page.get_by_role("heading", name=f"Run {older}").wait_for()
    journey.settle()
    journey.check(
        f"run={older}" in journey.page.url, "the clicked run is opened and linked", journey.page.url
    )


LOCK_S = 40.0
"""The issue's scenario: a nightly backfill holds the DuckDB file for 40 s while a teammate opens an
alert's link in a new tab."""


def test_a_fresh_tab_during_a_40_s_lock_shows_the_last_figures_with_one_notice(
    browser, journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    journey.page.goto(url)  # the server reads the warehouse once: its last good figures
    journey.page.get_by_text("Monthly coverage").wait_for()
    journey.settle()
    with warehouse_held(settings.warehouse):
        held_since = time.monotonic()
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        try:
            tab = journey.__class__(context.new_page(), journey.name + "-fresh-tab")
            tab.page.set_default_timeout(30000)
            tab.page.goto(url)
            tab.page.get_by_text("Monthly coverage").wait_for()
            tab.page.wait_for_timeout(3000)  # a few of the page's own retries
            for moment in ("at once", "after 40 s"):
                notices = tab.page.get_by_text("Waiting for the warehouse").count()
                tab.check(notices == 1, f"one waiting notice {moment}", f"{notices} notices")
                tab.check(tab.page.get_by_text("Monthly coverage").count() == 1, f"the last figures {moment}")
                tab.check(tab.page.get_by_text("Showing data as of").count() == 1, f"their time {moment}")
                remaining = LOCK_S - (time.monotonic() - held_since)
                if moment == "at once" and remaining > 0:
                    tab.page.wait_for_timeout(remaining * 1000)
        finally:
            context.close()


def _calendar(journey):
    """The first wide chart under the "By date" heading: the season's calendar (the colour key
    beside the heatmaps is narrow)."""
    heading = journey.page.get_by_role("heading", name="By date")
    charts = journey.page.locator('[data-testid="stVegaLiteChart"]')
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:  # a chart drawn anew takes a moment to get its size
        heading.scroll_into_view_if_needed()
        top = heading.bounding_box()["y"]
        for i in range(charts.count()):
            box = charts.nth(i).bounding_box()
            if box and box["y"] > top and box["width"] > 600:
                return charts.nth(i)
        journey.page.wait_for_timeout(250)
    raise AssertionError("no calendar under 'By date'")


def test_an_exact_calendar_range_is_selected_from_its_first_day_to_its_last(
    journey, fresh_console_and_settings
):
    url, settings = fresh_console_and_settings
    with duckdb.connect(settings.warehouse, read_only=True) as database:  # the server reads it only later
        expected = [
            row[0].isoformat()
            for row in database.execute(
                "SELECT DISTINCT game_date FROM nba_analytics.player_game_summary "
                "WHERE game_date BETWEEN DATE '2021-12-08' AND DATE '2021-12-15' ORDER BY game_date"
            ).fetchall()
        ]
    journey.page.goto(f"{url}/coverage")
    journey.page.get_by_text("By date").wait_for()
    journey.settle()
    journey.page.get_by_text("Range selection: first day, then last day").click()
    journey.settle()
    rows = (0.3, 0.4, 0.5, 0.6)
    for day in ("2021-12-15", "2021-12-08"):  # the last day first: either order makes the range
        calendar = _calendar(journey)  # drawn anew after each click
        journey.page.mouse.click(*_hover_to(journey, calendar, day, rows))
        journey.settle()
    text = _selected_text(journey, f"{len(expected)} selected:")
    journey.check(
        f"{len(expected)} selected: {', '.join(expected)}" in text, "exactly Dec 8 to Dec 15", text[-300:]
    )
