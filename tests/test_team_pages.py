"""A team's stages ranked and planned (issue 23), with the README's team example
(examples/team_pipeline) on the demo warehouse: the December incident, and a Grades stage that
no run has filled yet.

Expectations come from the demo's recipe (backfill.demo: predictions missing on Dec 7 and 9, MLFS
thin on Dec 9) and from SQL of the test's own, never from the page."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tomllib
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from backfill import upstream_rerun
from backfill.config import Settings
from backfill.demo import MISSING_PREDICTION_DATES, THIN_MLFS_DATE, create_declared_tables
from backfill.launch import run_here
from backfill.ledger import Ledger
from backfill.pipeline import builtin_pipeline, load_pipeline
from backfill.request import BackfillRequest
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.console_app import LOCAL_USER, console_app

ROOT = Path(__file__).resolve().parents[1]
TEAM_PIPELINE = ROOT / "examples" / "team_pipeline" / "pipeline.toml"
DECEMBER = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))


@pytest.fixture
def team(demo_file, tmp_path, monkeypatch) -> tuple[Settings, AppTest]:
    """The demo warehouse with the team's declared tables, and the console on the team's pipeline."""
    warehouse = tmp_path / "team.duckdb"
    shutil.copy(demo_file, warehouse)
    settings = Settings(
        warehouse=str(warehouse),
        ledger=str(tmp_path / "ledger.sqlite"),
        retry_delays=(0.0, 0.0, 0.0),
        pipeline=load_pipeline(TEAM_PIPELINE),
    )
    adapter = DuckDBWarehouse(settings, warehouse)
    try:
        create_declared_tables(adapter, settings)  # Grades: declared, empty (as `demo --pipeline` makes it)
    finally:
        adapter.close()
    app = console_app(settings, tmp_path, monkeypatch)
    monkeypatch.setenv("BACKFILL_PIPELINE", str(TEAM_PIPELINE))
    return settings, app


def december_game_dates(warehouse: str) -> list[dt.date]:
    # The adapter's configuration (not read_only): the console in this process may hold the file open.
    with duckdb.connect(warehouse) as connection:
        rows = connection.execute(
            "SELECT DISTINCT game_date FROM nba_analytics.player_game_summary "
            "WHERE game_date BETWEEN ? AND ? ORDER BY game_date",
            list(DECEMBER),
        ).fetchall()
    return [row[0] for row in rows]


def test_the_overviews_first_problem_is_the_december_predictions_incident_and_grades_is_one_line(team):
    settings, app = team
    at = app.run()
    assert not at.exception
    (worst,) = [table.value for table in at.table if "Stage" in table.value.columns]
    first = worst.iloc[0]
    assert (first["Period"], first["Stage"], first["Status"]) == ("2021-12", "Predictions", "missing")
    assert "Grades" not in set(worst["Stage"])
    links = [link.label for link in at.get("page_link")]
    not_yet = [label for label in links if "not yet backfilled" in label]
    assert len(not_yet) == 1 and not_yet[0].startswith("Grades: not yet backfilled")
    assert not [label for label in links if "Grades missing" in label]  # no flood of gap dates


def _dry_run_of_december_gaps(app: AppTest):
    at = app.run().switch_page("pages/backfill.py").run()
    at.segmented_control(key="backfill_source").set_value("gaps").run()
    at.selectbox(key="backfill_gap_scope").set_value("2021-12").run()
    at.button(key="backfill_dry_run").click().run()
    assert not at.exception
    (plan,) = [df.value for df in at.dataframe if "Gate" in df.value.columns]
    return plan


def test_a_gap_dates_dry_run_plans_on_each_date_only_its_gap_stages_and_their_downstream(team):
    settings, app = team
    plan = _dry_run_of_december_gaps(app)
    planned = {(row["Stage"], dt.date.fromisoformat(str(row["Date"])[:10])) for _, row in plan.iterrows()}
    # Grades on every December game date (empty); Predictions where the recipe left them out, and
    # MLFS where it is thin; nothing else is rebuilt.
    expected = {("Grades", day) for day in december_game_dates(settings.warehouse)}
    expected |= {("Predictions", day) for day in MISSING_PREDICTION_DATES}
    expected |= {("MLFS", THIN_MLFS_DATE)}
    assert planned == expected


def test_once_mlfs_and_predictions_are_whole_a_december_gap_dates_dry_run_plans_only_grades(team):
    settings, app = team
    # MLFS and predictions of December made whole by the demo's own SQL (the built-in pipeline).
    builtin = settings.replace(pipeline=builtin_pipeline())
    request = BackfillRequest.build(builtin, start=DECEMBER[0], end=DECEMBER[1])
    assert run_here(builtin, request, LOCAL_USER, sleep=lambda seconds: None).status == "succeeded"
    plan = _dry_run_of_december_gaps(app)
    assert set(plan["Stage"]) == {"Grades"}
    planned = sorted(dt.date.fromisoformat(str(day)[:10]) for day in plan["Date"])
    assert planned == december_game_dates(settings.warehouse)


def test_a_missing_stage_table_is_explained_as_the_cli_explains_it(demo_file, tmp_path, monkeypatch):
    warehouse = tmp_path / "team.duckdb"
    shutil.copy(demo_file, warehouse)  # the team's Grades table never created
    settings = Settings(warehouse=str(warehouse), ledger=str(tmp_path / "ledger.sqlite"))
    app = console_app(settings, tmp_path, monkeypatch)
    monkeypatch.setenv("BACKFILL_PIPELINE", str(TEAM_PIPELINE))
    for page in ("pages/overview.py", "pages/coverage.py", "pages/gaps.py"):
        at = app.switch_page(page).run()
        assert not at.exception
        shown = " | ".join(element.value for element in at.error)
        assert "stage grading: table nba_predictions.prediction_grades does not exist" in shown, page
        assert "demo creates the tables a pipeline file declares" in shown, page
        assert "Catalog Error" not in shown, page


@pytest.mark.slow  # the team's grading job runs as a subprocess
def test_a_date_failing_for_want_of_its_upstream_names_it_and_offers_rerun_with_upstream(team):
    settings, app = team
    day = MISSING_PREDICTION_DATES[0]  # the recipe left the predictions of this date out
    request = BackfillRequest.build(settings, dates=[day], stages=["grading"])
    result = run_here(settings, request, LOCAL_USER, sleep=lambda seconds: None)
    assert result.status == "failed"
    ledger = Ledger(settings.ledger)
    (item,) = ledger.items(result.run_id)
    assert (item["status"], item["error_class"]) == ("failed", "upstream")
    assert item["error_message"].startswith("its upstream Predictions is missing on this date")
    at = app.run()
    at.query_params["run"] = result.run_id
    at = at.switch_page("pages/runs.py").run()
    assert not at.exception
    button = at.button(key="runs_rerun_upstream")
    assert button.label.startswith("Rerun with upstream: Predictions first (1 date)")
    assert not button.disabled
    assert upstream_rerun.run_request(ledger, result.run_id, settings.pipeline).items() == [
        ("predictions", day),
        ("grading", day),
    ]


def test_the_overview_draws_the_pipeline_file_as_a_graph_with_each_stages_coverage(team):
    settings, app = team
    at = app.run()
    assert not at.exception
    (graph,) = at.get("graphviz_chart")
    dot = graph.proto.spec
    # The edges as the pipeline file writes them (each stage's upstream), read with tomllib here.
    declared = tomllib.loads(TEAM_PIPELINE.read_text())["stages"]
    edges = {(spec["upstream"], name) for name, spec in declared.items() if "upstream" in spec}
    assert set(re.findall(r'"(\w+)" -> "(\w+)"', dot)) == edges
    assert "Grades\\nnba_predictions.prediction_grades\\nnot yet backfilled" in dot
    # MLFS over the whole data range: the recipe thins one date (Dec 9) only, so one gap date.
    assert re.search(r"MLFS\\nnba_precompute.ml_feature_store\\n\d+\.\d% expected, 1 gap date\"", dot)
