"""The console: every page through Streamlit's AppTest on the demo warehouse, and its pure helpers."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from backfill.config import Settings
from backfill.coverage import daily_coverage, data_bounds, monthly_coverage
from backfill.warehouse.duckdb import DuckDBWarehouse
from ui import charts, selection, tables

APP = Path(__file__).resolve().parents[1] / "app.py"
COVERAGE_PAGE = "pages/coverage.py"
DEC_7, DEC_9 = dt.date(2021, 12, 7), dt.date(2021, 12, 9)
CHRISTMAS_EVE = dt.date(2021, 12, 24)  # an off day of the demo calendar


@pytest.fixture
def app(demo_file, tmp_path, monkeypatch) -> AppTest:
    """The console on the shared demo file, with no setting from the developer's environment."""
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BACKFILL_CONFIG", os.devnull)
    monkeypatch.setenv("BACKFILL_WAREHOUSE", str(demo_file))
    monkeypatch.setenv("BACKFILL_CACHE_DIR", str(tmp_path / "cache"))  # not the repository's data/cache
    return AppTest.from_file(str(APP), default_timeout=60)


@pytest.fixture
def coverage_page(app) -> AppTest:
    app.run()
    return app.switch_page(COVERAGE_PAGE).run()


@pytest.fixture(scope="module")
def demo_frames(demo_file) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Daily and monthly coverage of the demo, for the chart builders."""
    settings = Settings(warehouse=str(demo_file))
    warehouse = DuckDBWarehouse(settings, demo_file)
    start, end = data_bounds(warehouse)
    daily = daily_coverage(warehouse, settings, start, end)
    return daily, monthly_coverage(warehouse, settings, start, end, daily=daily)


def _missing_players(at: AppTest) -> pd.DataFrame:
    (frame,) = [df.value for df in at.dataframe if "Reason" in df.value.columns]
    return frame


# -- the pages --------------------------------------------------------------------------------


def test_overview_shows_december_2021_predictions_below_100(app):
    at = app.run()
    assert not at.exception
    (predictions, _) = [df.value for df in at.dataframe if "Note" in df.value.columns]  # the first tab
    december = predictions[predictions["Period"] == "2021-12"].iloc[0]
    assert december["Coverage %"] < 100.0
    assert december["Status"] == "missing"
    assert "Dec 07 missing" in december["Note"]
    assert {metric.label for metric in at.metric} >= {
        "Seasons",
        "Predictions coverage",
        "Gap dates",
        "Stale rows",
    }
    assert next(m for m in at.metric if m.label == "Gap dates").value == "2"


def test_sidebar_names_the_warehouse_and_says_single_user_local_mode(app, demo_file):
    at = app.run()
    captions = " ".join(caption.value for caption in at.sidebar.caption)
    assert str(demo_file) in captions
    assert "Single-user local mode" in captions
    assert "90%" in captions  # the MLFS gate in force


def test_refresh_button_reruns_the_page_without_error(app):
    at = app.run()
    at.sidebar.button(key="sidebar_refresh").click().run()
    assert not at.exception
    assert at.dataframe


def test_bad_settings_stop_with_a_one_line_error(app, monkeypatch):
    monkeypatch.setenv("BACKFILL_OK_PCT", "150")
    at = app.run()
    assert not at.exception
    assert "ok_pct must be between 0 and 100" in at.error[0].value
    assert not at.dataframe


def test_coverage_page_runs_for_each_stage(coverage_page):
    assert not coverage_page.exception
    coverage_page.segmented_control(key="coverage_stage").set_value("mlfs").run()
    assert not coverage_page.exception
    assert coverage_page.button(key="coverage_add_gaps").label.startswith("Add MLFS gap dates (1)")


def test_drill_down_opens_on_2021_12_07_and_lists_players_without_prediction(coverage_page):
    assert coverage_page.date_input(key="coverage_drill_date").value == DEC_7
    missing = _missing_players(coverage_page)
    assert len(missing) > 0
    assert missing["Reason"].str.contains("no prediction").any()
    assert coverage_page.query_params["date"] == "2021-12-07"  # the link to share


def test_date_link_preselects_the_drill_down(app):
    app.query_params["date"] = "2021-12-09"
    at = app.switch_page(COVERAGE_PAGE).run()
    assert not at.warning
    assert at.date_input(key="coverage_drill_date").value == DEC_9
    assert _missing_players(at)["Reason"].str.startswith("blocked upstream").any()


@pytest.mark.parametrize("raw", ["not-a-date", "2021-13-45", "2031-01-01"])
def test_bad_date_link_warns_in_one_line_and_falls_back(app, raw):
    app.query_params["date"] = raw
    at = app.switch_page(COVERAGE_PAGE).run()
    assert not at.exception
    (warning,) = at.warning
    assert "Ignored the link's date" in warning.value and "\n" not in warning.value
    assert at.date_input(key="coverage_drill_date").value == DEC_7


def test_adding_dates_without_the_chart_fills_selected_dates(coverage_page):
    at = coverage_page
    at.text_input(key="coverage_add_date").input(DEC_9.isoformat())
    at.button(key="coverage_add_button").click().run()
    at.text_input(key="coverage_add_date").input(DEC_7.isoformat())
    at.button(key="coverage_add_button").click().run()
    assert at.session_state[selection.SELECTED_DATES_KEY] == [DEC_7, DEC_9]
    assert "2 selected" in " ".join(md.value for md in at.markdown)

    at.button(key="coverage_clear").click().run()
    assert at.session_state[selection.SELECTED_DATES_KEY] == []


def test_a_date_without_games_is_not_added_and_the_page_says_why(coverage_page):
    at = coverage_page
    at.text_input(key="coverage_add_date").input(CHRISTMAS_EVE.isoformat())
    at.button(key="coverage_add_button").click().run()
    assert selection.selected_dates(at.session_state) == []
    assert any("no games" in warning.value for warning in at.warning)


@pytest.mark.parametrize("typed", ["20211345", "20211209", "2021-W49", "2021-12-9"])
def test_a_date_typed_other_than_yyyy_mm_dd_is_refused_in_one_line_not_guessed(coverage_page, typed):
    at = coverage_page
    at.text_input(key="coverage_add_date").input(typed)
    at.button(key="coverage_add_button").click().run()
    assert selection.selected_dates(at.session_state) == []
    (warning,) = at.warning
    assert "YYYY-MM-DD" in warning.value and "\n" not in warning.value


def test_the_notice_of_an_earlier_add_is_gone_after_the_next_add(coverage_page):
    at = coverage_page
    at.text_input(key="coverage_add_date").input(CHRISTMAS_EVE.isoformat())
    at.button(key="coverage_add_button").click().run()
    at.text_input(key="coverage_add_date").input(DEC_9.isoformat())
    at.button(key="coverage_add_button").click().run()
    assert selection.selected_dates(at.session_state) == [DEC_9]
    assert not any(str(CHRISTMAS_EVE) in warning.value for warning in at.warning)


def test_gap_dates_button_selects_every_gap_of_the_stage(coverage_page):
    coverage_page.button(key="coverage_add_gaps").click().run()
    assert coverage_page.session_state[selection.SELECTED_DATES_KEY] == [DEC_7, DEC_9]


def test_selection_survives_a_visit_to_another_page(coverage_page):
    at = coverage_page
    at.button(key="coverage_add_gaps").click().run()
    at.switch_page("pages/overview.py").run()
    assert at.session_state[selection.SELECTED_DATES_KEY] == [DEC_7, DEC_9]


# -- chart builders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "pct", "band"),
    [
        ("ok", 100.0, "100%"),
        ("ok", 99.4, "ok, <100%"),
        ("partial", 99.7, "partial, ≥90%"),
        ("partial", 84.1, "partial, <90%"),
        ("bootstrap", None, "bootstrap"),
        ("blocked", 0.0, "blocked"),
        ("missing", 0.0, "missing"),
        ("no_games", None, "no games"),
    ],
)
def test_each_status_has_its_own_colour_band(status, pct, band):
    assert charts.coverage_band(status, pct) == band
    assert band in charts.BAND_COLORS


def test_daily_calendar_places_dates_by_week_and_weekday_and_selects_by_game_date(demo_frames):
    daily, _ = demo_frames
    spec = charts.daily_calendar(
        daily, "predictions", 2021, selected={DEC_9}, upstream_label="MLFS", stage_label="Predictions"
    ).to_dict()
    assert spec["title"] == "2021-22 · Predictions"  # the stage's label, not its name
    cells, days = spec["layer"]
    params = {param["name"]: param["select"] for param in spec.get("params", []) + cells.get("params", [])}
    assert params[charts.DATE_SELECTION]["type"] == "point"
    assert params[charts.DATE_SELECTION]["fields"] == ["game_date"]
    assert params[charts.RANGE_SELECTION]["type"] == "interval"
    assert days["encoding"]["text"]["field"] == "day"
    encoding = cells["encoding"]
    assert (encoding["x"]["field"], encoding["x"]["type"], encoding["x2"]["field"]) == (
        "week_start",
        "temporal",
        "week_end",
    )
    assert encoding["y"]["field"] == "weekday" and encoding["y"]["sort"] == list(charts.WEEKDAYS)
    assert encoding["color"]["field"] == "band"
    assert encoding["color"]["scale"]["domain"] == list(charts.BAND_COLORS)
    tooltips = {tip["field"] for tip in encoding["tooltip"]}
    assert {"game_date", "status", "players_text", "expected_text", "upstream_text"} <= tooltips

    data = charts.daily_calendar_data(daily, "predictions", 2021, selected={DEC_9}).set_index("game_date")
    assert data.loc["2021-12-07", "band"] == "missing" and data.loc["2021-12-07", "weekday"] == "Tue"
    assert data.loc["2021-12-09", "band"] == "blocked" and data.loc["2021-12-09", "selected"]
    assert data.loc["2021-12-24", "band"] == "no games"
    assert data.loc["2021-12-07", "week_start"] == "2021-12-06"
    assert data.loc["2021-12-07", "day"] == 7


def test_dragging_across_weeks_selects_the_game_dates_of_those_weeks():
    # Dec 6 to Dec 19, 2021 are two Monday-to-Sunday weeks; the browser reports epoch milliseconds.
    low = dt.datetime(2021, 12, 6, tzinfo=dt.UTC).timestamp() * 1000
    high = dt.datetime(2021, 12, 13, 12, tzinfo=dt.UTC).timestamp() * 1000
    event = {"selection": {charts.RANGE_SELECTION: {"week_start": [high, low]}}}
    game_days = {dt.date(2021, 12, day) for day in (5, 6, 12, 13, 19, 20)}
    assert selection.dates_from_week_range(event, charts.RANGE_SELECTION, game_days) == [
        dt.date(2021, 12, day) for day in (6, 12, 13, 19)
    ]
    assert selection.dates_from_week_range({"selection": {}}, charts.RANGE_SELECTION, game_days) == []


def test_a_month_click_names_its_month():
    event = {"selection": {charts.MONTH_SELECTION: [{"period": "2021-12"}]}}
    assert selection.months_from_chart_event(event, charts.MONTH_SELECTION) == ["2021-12"]
    assert selection.months_from_chart_event(None, charts.MONTH_SELECTION) == []


def test_monthly_heatmap_is_season_by_month_in_season_order(demo_frames):
    _, monthly = demo_frames
    spec = charts.monthly_heatmap(monthly, "predictions").to_dict()
    cells, labels = spec["layer"]
    params = {param["name"]: param["select"] for param in spec.get("params", []) + cells.get("params", [])}
    assert params[charts.MONTH_SELECTION]["fields"] == ["period"]
    assert cells["encoding"]["x"]["sort"] == ["Oct", "Nov", "Dec", "Jan", "Feb", "Mar", "Apr"]
    assert cells["encoding"]["y"]["field"] == "season_label"
    assert cells["encoding"]["color"]["field"] == "band"
    assert {"status", "note", "expected_text", "players_text"} <= {
        t["field"] for t in cells["encoding"]["tooltip"]
    }
    assert labels["encoding"]["text"]["field"] == "label"

    data = charts.monthly_heatmap_data(monthly, "predictions").set_index("period")
    december = monthly[(monthly["period"] == "2021-12") & (monthly["stage"] == "predictions")].iloc[0]
    assert data.loc["2021-12", "band"] == "missing"
    assert data.loc["2021-12", "label"] == f"{december['expected_coverage_pct']:.1f}"
    assert data.loc["2021-10", "band"] == "bootstrap"


def test_funnel_has_the_steps_in_pipeline_order():
    spec = charts.funnel_chart({"played": 175, "MLFS": 175, "Predictions": 0}).to_dict()
    assert spec["layer"][0]["encoding"]["y"]["sort"] == ["played", "MLFS", "Predictions"]


# -- selection and tables ---------------------------------------------------------------------


def test_chart_click_toggles_dates_with_games_and_reports_off_days():
    state: dict = {}
    event = {"selection": {charts.DATE_SELECTION: [{"game_date": "2021-12-09"}, {"game_date": "2021-12-24"}]}}
    clicked, notice = selection.apply_click(state, event, charts.DATE_SELECTION, {DEC_7, DEC_9})
    assert clicked == [DEC_9] and state[selection.SELECTED_DATES_KEY] == [DEC_9]
    assert notice == "2021-12-24: no games, nothing to backfill."

    selection.apply_click(state, event, charts.DATE_SELECTION, {DEC_7, DEC_9})
    assert state[selection.SELECTED_DATES_KEY] == []


def test_chart_events_without_dates_change_nothing():
    state = {selection.SELECTED_DATES_KEY: [DEC_7]}
    for event in (None, {}, {"selection": {}}, {"selection": {charts.DATE_SELECTION: [{"game_date": "x"}]}}):
        assert selection.apply_click(state, event, charts.DATE_SELECTION, {DEC_7}) == ([], None)
    assert state[selection.SELECTED_DATES_KEY] == [DEC_7]


def test_monthly_table_keeps_the_team_figure_beside_player_game_coverage(demo_frames):
    _, monthly = demo_frames
    table = tables.monthly_table(monthly, "predictions").set_index("Period")
    december = monthly[(monthly["period"] == "2021-12") & (monthly["stage"] == "predictions")].iloc[0]
    assert table.loc["2021-12", "Players %"] == 100.0  # every player had a prediction on some date
    assert table.loc["2021-12", "Coverage %"] == december["player_game_coverage_pct"] < 100.0
    covered, total = december["player_games_covered"], december["player_games_total"]
    assert table.loc["2021-12", "Covered / total"] == f"{covered:,} / {total:,}"


def test_sidebar_shows_the_warehouses_estimate_of_a_coverage_refresh_where_it_gives_one(app, monkeypatch):
    import backfill.cost

    estimate = backfill.cost.CostEstimate(
        bytes_processed=5 * 1024**3,
        statements=2,
        largest=4 * 1024**3,
        guard=50 * 1024**3,
        warehouse="BigQuery project p",
    )
    monkeypatch.setattr(backfill.cost, "coverage_estimate", lambda warehouse, settings, start, end: estimate)
    st.cache_data.clear()  # an earlier test cached "no estimate" (DuckDB) for the same settings
    at = app.run()
    assert any(
        "BigQuery estimate: 5.0 GiB processed by 2 statements" in caption.value
        for caption in at.sidebar.caption
    )


def test_the_coverage_pages_own_date_in_the_url_is_not_taken_for_a_link_to_scroll_to(app):
    at = app.switch_page("pages/coverage.py").run()
    assert at.query_params["date"]  # the page keeps its drill-down date in the URL
    at.toggle(key="coverage_range_mode").set_value(True).run()  # any later run of the page
    assert not at.exception
    scrolled = at.session_state.get("console_scrolled_to", set())
    assert not scrolled
    assert not [element for element in at.main if element.type == "iframe"]  # no scroll script drawn
