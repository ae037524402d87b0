"""What a new user does, in a real browser (SPEC 5; issue "Proof for users")."""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path


def test_overview_shows_december_2021_below_100_percent(journey, console):
    url, _ = console
    journey.page.goto(url)
    journey.page.get_by_text("Monthly coverage").wait_for()
    journey.settle()
    cells = journey.grid_text("2021-12")
    december = cells.index("2021-12") if "2021-12" in cells else -1
    journey.check(december >= 0, "overview monthly table", "no 2021-12 row in the monthly table")
    coverage_pct = float(cells[december + 2])
    journey.check(coverage_pct < 100.0, "december below 100", f"December shows {coverage_pct}")


def test_coverage_heatmaps_are_drawn_and_the_drill_down_lists_missing_players(journey, console):
    url, _ = console
    journey.page.goto(f"{url}/coverage?date=2021-12-07")
    journey.page.get_by_text("By month").wait_for()
    journey.settle()
    charts = journey.page.locator(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    )
    charts.first.wait_for()
    journey.check(charts.count() >= 2, "heatmaps drawn", f"{charts.count()} charts on the page")
    journey.page.get_by_text("Date drill-down").scroll_into_view_if_needed()
    cells = journey.grid_text("no prediction")
    reasons = [text for text in cells if "no prediction" in text]
    journey.check(len(reasons) > 0, "drill-down of 2021-12-07", "no missing player with a reason listed")


def test_a_deep_link_as_a_fresh_servers_first_request_keeps_navigation_and_parameters(journey, fresh_console):
    # With a pages/ folder Streamlit runs the file alone for a fresh server's first request; the
    # page reruns through app.py at once (ui/entry.py), which declares the navigation.
    journey.page.goto(f"{fresh_console}/coverage?date=2021-12-09")
    journey.page.get_by_text("Date drill-down").wait_for()
    journey.settle()
    navigation = journey.page.locator('[data-testid="stSidebarNav"]').inner_text()
    journey.check("Gaps & stale rows" in navigation, "navigation of the console", navigation)
    journey.check("date=2021-12-09" in journey.page.url, "query parameter kept", journey.page.url)
    cells = journey.grid_text("blocked upstream")
    journey.check(any("blocked upstream" in cell for cell in cells), "drill-down of 2021-12-09")


def _open(journey, url: str, path: str, marker: str) -> None:
    journey.page.goto(f"{url}{path}")
    journey.page.get_by_text(marker).first.wait_for()
    journey.settle()


def _sidebar(journey, title: str, marker: str) -> None:
    journey.page.locator('[data-testid="stSidebarNav"]').get_by_text(title, exact=True).click()
    journey.page.get_by_text(marker).first.wait_for()
    journey.settle()


def _wait_for_status(journey, statuses: tuple[str, ...], timeout_s: float = 90) -> str:
    """Wait until the followed run's status badge shows one of ``statuses``."""
    deadline = timeout_s * 1000
    locator = journey.page.locator('[data-testid="stMarkdownContainer"]')
    waited = 0
    while waited < deadline:
        text = " ".join(locator.all_inner_texts())
        for status in statuses:
            if status in text:
                return status
        journey.page.wait_for_timeout(500)
        waited += 500
    return ""


def test_backfill_the_december_gaps_and_see_december_at_100_percent(journey, console):
    url, _ = console
    _open(journey, url, "/coverage", "By month")
    journey.page.get_by_role("button", name="Add Predictions gap dates").click()
    journey.settle()
    with contextlib.suppress(Exception):  # a deadline, not a count taken once: the check says the rest
        journey.page.get_by_text("2 selected").first.wait_for(timeout=20000)
    selected = journey.page.get_by_text("2 selected").count()
    journey.check(selected > 0, "december gaps selected on coverage")

    _sidebar(journey, "Backfill", "Preview and launch")
    journey.page.get_by_role("button", name="Dry run").click()
    journey.settle()
    plan = journey.grid_text("2021-12-09")
    journey.check("2021-12-07" in plan and "2021-12-09" in plan, "dry run plan", f"plan cells: {plan[:20]}")

    journey.page.get_by_role("button", name="Launch backfill").click()
    journey.settle()
    status = _wait_for_status(journey, ("succeeded", "failed", "blocked", "interrupted"))
    journey.check(status == "succeeded", "run progress reaches done", f"run ended as {status or 'nothing'}")
    bar = journey.page.locator('[data-testid="stProgress"]')
    journey.check(bar.count() > 0, "progress bar shown")

    _sidebar(journey, "Overview", "Monthly coverage")
    cells = journey.grid_text("2021-12")
    december = cells.index("2021-12")
    journey.check(
        float(cells[december + 2]) == 100.0,
        "december at 100 on overview",
        f"row: {cells[december : december + 9]}",
    )


def test_a_blocked_run_is_listed_with_its_outcome_and_rerun_failed_starts_a_new_run(journey, fresh_console):
    _open(journey, fresh_console, "/backfill", "Preview and launch")
    journey.page.get_by_text("Typed dates", exact=True).click()
    journey.settle()
    typed = journey.page.get_by_role("textbox", name="Dates", exact=True)
    typed.fill("2021-12-09")
    typed.press("Enter")
    journey.settle()
    stages = journey.page.locator('[data-testid="stButtonGroup"]').filter(has_text="Predictions")
    stages.get_by_text("MLFS", exact=True).click()  # predictions only: Dec 9 is gated
    journey.settle()
    journey.page.get_by_role("button", name="Launch backfill").click()
    journey.settle()
    status = _wait_for_status(journey, ("succeeded", "failed", "blocked"))
    journey.check(status == "blocked", "predictions of Dec 9 blocked by the gate", f"ended as {status}")

    journey.page.get_by_text(
        "Open in Runs"
    ).first.click()  # the launch notice and the run header both link there
    journey.page.get_by_text("Rerun failed dates").first.wait_for()
    journey.settle()
    items = journey.grid_text("blocked")
    journey.check(
        "2021-12-09" in items and "blocked" in items, "run listed with its per-date outcome", str(items[:20])
    )
    journey.page.get_by_role("button", name="Rerun failed dates (1)").click()
    journey.settle()
    journey.page.get_by_text("rerun of").first.wait_for(timeout=30000)
    journey.check(journey.page.get_by_text("rerun of").count() > 0, "rerun failed created a new run")


def test_download_the_markdown_and_csv_gap_reports(journey, fresh_console):
    _open(journey, fresh_console, "/gaps", "Export")
    downloads = {}
    for label in ("Markdown", "CSV"):
        with journey.page.expect_download() as caught:
            journey.page.get_by_role("button", name=label, exact=False).last.click()
        downloads[label] = Path(caught.value.path()).read_text()
    journey.shot("downloads")
    markdown, csv = downloads["Markdown"], downloads["CSV"]
    for day in ("2021-12-07", "2021-12-09"):
        journey.check(day in markdown, f"markdown names {day}")
        journey.check(day in csv, f"csv lists {day}")
    journey.check("## Gaps" in markdown or "Gaps" in markdown, "markdown reads like the hand-off note")


def test_the_overview_links_the_last_check_and_history_shows_the_gap_and_the_run_that_fixed_it(
    journey, fresh_console_and_settings
):
    from backfill.alerts import AlertSecrets
    from backfill.history import record_run_snapshot
    from backfill.launch import run_here
    from backfill.request import BackfillRequest
    from backfill.warehouse.duckdb import DuckDBWarehouse
    from backfill.watch import run_check

    url, settings = fresh_console_and_settings
    week, day = ("2022-01-03", "2022-01-09"), "2022-01-05"
    window = tuple(dt.date.fromisoformat(d) for d in week)
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    try:  # what cron and an operator did before anyone looked: check, lose a date, check, backfill, check
        run_check(settings, warehouse, *window, who="cron", secrets=AlertSecrets())
        warehouse.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": dt.date.fromisoformat(day)})
        run_check(settings, warehouse, *window, who="cron", secrets=AlertSecrets())
        request = BackfillRequest.build(settings, dates=[day], stages="predictions")
        run = run_here(settings, request, "operator", warehouse=warehouse)
        record_run_snapshot(settings, run.run_id, warehouse, [dt.date.fromisoformat(day)])
        run_check(settings, warehouse, *window, who="cron", secrets=AlertSecrets())
    finally:
        warehouse.close()

    _open(journey, url, "", "Monthly coverage")
    last = journey.page.get_by_text("Last check:")
    journey.check(last.count() > 0, "overview names the last check")
    journey.check("1 recovered" in last.first.inner_text(), "last check result", last.first.inner_text())
    last.first.click()
    journey.page.get_by_text("Gaps: when they appeared").wait_for()
    journey.settle()
    cells = journey.grid_text(f"run {run.run_id}")
    journey.check("problems" in cells, "the check that found the gap is listed", str(cells[:30]))
    journey.check(
        day in cells and f"run {run.run_id}" in cells, "the gap and the run that fixed it", str(cells[-12:])
    )
