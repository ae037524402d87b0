"""The console on a team's own pipeline (examples/team_pipeline), in a real browser (SPEC 7).

Three stages computed by the team's MERGE jobs: the Coverage page offers each, a December backfill
launched from the Backfill page runs the jobs (the first attempt at each predictions batch times
out and is retried), and December ends at 100.0% for every stage.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.browser.conftest import ROOT, Journey, _serve
from tests.browser.test_journeys import _open, _sidebar, _wait_for_status

PIPELINE = ROOT / "examples" / "team_pipeline" / "pipeline.toml"
LABELS = ("MLFS", "Predictions", "Grades")
"""The stages' labels in the example's pipeline file, upstream first."""


@pytest.fixture(scope="module")
def example_console(tmp_path_factory):
    """A console on the example pipeline, over a demo warehouse rebuilt with its declared tables."""
    flaky = tmp_path_factory.mktemp("flaky-markers")

    def build_with_the_example_pipeline(environment: dict[str, str]) -> None:
        subprocess.run(
            [sys.executable, "-m", "backfill", "demo", "--warehouse", environment["BACKFILL_WAREHOUSE"]],
            cwd=ROOT, env=environment, check=True, capture_output=True,
        )  # fmt: skip

    yield from _serve(
        tmp_path_factory,
        env={
            "BACKFILL_PIPELINE": str(PIPELINE),
            "TEAM_JOB_FLAKY_FIRST": "1",
            "TEAM_JOB_FLAKY_DIR": str(flaky),
        },
        prepare=build_with_the_example_pipeline,
    )


@pytest.fixture
def example_journey(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30000)
    yield Journey(page, request.node.name.removeprefix("test_"))
    context.close()


def _december_row(journey: Journey) -> list[str]:
    """The 2021-12 row of the monthly table in the tab shown (the other tabs' tables are hidden)."""
    cells = journey.page.locator('[role="tabpanel"]:visible [role="gridcell"]')
    cells.filter(has_text="2021-12").first.wait_for(state="attached", timeout=20000)
    cells = [cells.nth(i).inner_text() for i in range(cells.count())]
    december = cells.index("2021-12") if "2021-12" in cells else -1
    return cells[december : december + 9] if december >= 0 else []


def test_a_december_backfill_of_the_team_jobs_brings_all_three_stages_to_100_percent(
    example_journey, example_console
):
    journey = example_journey
    url, _ = example_console
    _open(journey, url, "/coverage", "By month")
    picker = journey.page.locator('[data-testid="stButtonGroup"]').first
    shown = picker.inner_text()
    journey.check(all(label in shown for label in LABELS), "coverage stage picker has three stages", shown)
    picker.get_by_text("Grades", exact=True).click()
    journey.settle()
    journey.shot("grades heatmap before the backfill")

    _sidebar(journey, "Backfill", "Preview and launch")
    journey.page.get_by_text("Date range", exact=True).click()
    journey.settle()
    for label, digits in (("From", "20211201"), ("To (inclusive)", "20211231")):
        # A date field of segments (year, month, day): typing fills them in turn.
        journey.page.get_by_label(label, exact=True).locator('[role="spinbutton"]').first.click()
        journey.page.keyboard.type(digits)
        journey.page.keyboard.press("Escape")  # close the calendar
        journey.page.get_by_role("heading", name="Dates").click()  # leaving the field commits it
        journey.settle()
    stages = journey.page.locator('[data-testid="stButtonGroup"]').filter(has_text="Grades").inner_text()
    journey.check(all(label in stages for label in LABELS), "backfill offers the three stages", stages)
    launch = journey.page.get_by_role("button", name="Launch backfill")
    journey.check(launch.is_enabled(), "december range chosen")
    launch.click()
    journey.settle()
    status = _wait_for_status(journey, ("succeeded", "failed", "blocked", "interrupted"), timeout_s=120)
    journey.check(status == "succeeded", "the team's jobs finish", f"run ended as {status or 'nothing'}")

    _sidebar(journey, "Overview", "Monthly coverage")
    for label in reversed(LABELS):
        journey.page.get_by_role("tab", name=label).click()
        journey.page.wait_for_timeout(500)
        row = _december_row(journey)
        # Columns: period, season, coverage %, covered of total, expected %, ...
        journey.check(
            len(row) > 4 and float(row[2]) == 100.0 and float(row[4]) == 100.0,
            f"overview december at 100 for {label}",
            f"row: {row}",
        )

    _open(journey, url, "/coverage?date=2021-12-09", "Date drill-down")
    text = journey.page.locator('[data-testid="stMain"]').inner_text()
    journey.check(
        "has a row in every stage (MLFS, Predictions, Grades)" in text,
        "drill-down of 2021-12-09 complete in every stage",
        text[-600:],
    )
