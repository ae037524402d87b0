"""What a new user does, in a real browser (SPEC 5; issue "Proof for users")."""

from __future__ import annotations


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
    # Streamlit runs a pages/ file without app.py for a fresh server's first request; the page
    # hands over to app.py, which comes back to it with the same query parameters.
    journey.page.goto(f"{fresh_console}/coverage?date=2021-12-09")
    journey.page.get_by_text("Date drill-down").wait_for()
    journey.settle()
    navigation = journey.page.locator('[data-testid="stSidebarNav"]').inner_text()
    journey.check("Gaps & stale rows" in navigation, "navigation of the console", navigation)
    journey.check("date=2021-12-09" in journey.page.url, "query parameter kept", journey.page.url)
    cells = journey.grid_text("blocked upstream")
    journey.check(any("blocked upstream" in cell for cell in cells), "drill-down of 2021-12-09")
