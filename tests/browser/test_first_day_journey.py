"""A team's first day in a real browser: the console on the team's own warehouse, no pipeline file."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.browser.conftest import _serve
from tests.team_warehouse import copy_as_team_data


@pytest.fixture
def team_console(tmp_path_factory):
    """A console whose warehouse holds the demo's rows in tables the team made (no demo mark)."""

    def as_team_data(environment: dict[str, str]) -> None:
        warehouse = Path(environment["BACKFILL_WAREHOUSE"])
        demo = warehouse.with_name("demo-source.duckdb")
        shutil.move(warehouse, demo)
        copy_as_team_data(demo, warehouse)

    for url, _ in _serve(tmp_path_factory, prepare=as_team_data):
        yield url


def test_the_backfill_page_on_a_team_warehouse_says_to_declare_the_pipeline(browser, team_console, request):
    from tests.browser.conftest import Journey

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        page.set_default_timeout(30000)
        journey = Journey(page, request.node.name.removeprefix("test_"))
        page.goto(f"{team_console}/backfill")
        refusal = page.get_by_text("declare your team's pipeline file").first
        refusal.wait_for()
        journey.settle()
        text = refusal.inner_text()
        journey.check(
            "built-in demo pipeline writes only to a warehouse built by" in text, "refusal shown", text
        )
        launch = page.get_by_role("button", name="Launch backfill")
        journey.check(launch.is_disabled(), "launch not offered", "the Launch button is enabled")
    finally:
        context.close()
