"""The Gaps & stale rows page through AppTest on a private demo copy, and its pure helpers."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from backfill.config import Settings
from backfill.coverage import data_bounds
from backfill.ledger import Ledger
from backfill.report import gap_report
from backfill.stale import CATEGORIES, delete_stale, stale_counts
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.builtin import thin_date_mlfs_pct, thin_date_players
from ui import gaps as helpers
from ui import selection, stages

TABLE_LABELS = {"ml_feature_store": "MLFS", "player_prop_predictions": "Predictions"}

APP = Path(__file__).resolve().parents[1] / "app.py"
GAPS_PAGE = "pages/gaps.py"
DEC_7, DEC_9 = dt.date(2021, 12, 7), dt.date(2021, 12, 9)
LOCAL_USER = "carol@example.com"
OPERATOR, VIEWER = "alice@example.com", "bob@example.com"


@pytest.fixture
def demo_settings(demo_copy, tmp_path) -> Settings:
    """A private demo copy and ledger, for tests that delete or record runs."""
    return Settings(warehouse=str(demo_copy), ledger=str(tmp_path / "ledger.sqlite"))


@pytest.fixture(scope="module")
def shared_settings(demo_file, tmp_path_factory) -> Settings:
    """The shared demo file and a ledger path that stays absent, for tests that only look: the same
    settings in every such test, so they share cached results (the page never writes without a click
    on "Delete")."""
    return Settings(
        warehouse=str(demo_file), ledger=str(tmp_path_factory.mktemp("no-ledger") / "ledger.sqlite")
    )


def console(settings: Settings, tmp_path: Path, monkeypatch) -> AppTest:
    """The console on these settings' warehouse and ledger, in single-user local mode as LOCAL_USER."""
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BACKFILL_CONFIG", os.devnull)
    monkeypatch.setenv("BACKFILL_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("BACKFILL_LEDGER", settings.ledger)
    monkeypatch.setenv("BACKFILL_USER", LOCAL_USER)
    return AppTest.from_file(str(APP), default_timeout=60)


@pytest.fixture
def app(demo_settings, tmp_path, monkeypatch) -> AppTest:
    """The console on a private demo copy and ledger."""
    return console(demo_settings, tmp_path, monkeypatch)


def open_page(app: AppTest) -> AppTest:
    at = app.switch_page(GAPS_PAGE).run()
    assert not at.exception
    return at


@pytest.fixture
def page(shared_settings, tmp_path, monkeypatch) -> AppTest:
    """The page on the shared demo file, for tests that do not delete."""
    return open_page(console(shared_settings, tmp_path, monkeypatch))


@pytest.fixture
def served(monkeypatch) -> dict:
    """What each download button would serve, by file name: a spy on Streamlit's deferred files."""
    files: dict = {}
    original = MediaFileManager.add_deferred

    def spy(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        files[file_name] = (mimetype, data_callable)
        return original(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", spy)
    return files


def gap_table(at: AppTest) -> pd.DataFrame | None:
    frames = [element.value for element in at.dataframe if "Reason" in element.value.columns]
    return frames[0] if frames else None


def preview_frame(at: AppTest) -> pd.DataFrame:
    (frame,) = [element.value for element in at.dataframe if "stale because" in element.value.columns]
    return frame


def pivots(at: AppTest) -> list[pd.DataFrame]:
    """Stale-row tables in page order: all stale rows, then the deletion's plan or its outcome."""
    return [element.value for element in at.dataframe if "Table" in element.value.columns]


def stale_on_file(settings: Settings) -> pd.DataFrame:
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    try:
        return stale_counts(warehouse, settings, *data_bounds(warehouse))
    finally:
        warehouse.close()


# -- gaps ------------------------------------------------------------------------------------------


def test_gap_table_lists_the_incident_dates_and_hides_bootstrap_dates_by_default(page, read_only_demo):
    gaps = gap_table(page)
    assert list(zip(gaps["Date"], gaps["Stage"], gaps["Status"])) == [
        (DEC_7, "Predictions", "missing"),
        (DEC_9, "MLFS", "partial"),
        (DEC_9, "Predictions", "blocked"),
    ]
    assert gaps.loc[0, "Reason"] == "no predictions rows"
    mlfs_pct = thin_date_mlfs_pct(thin_date_players(read_only_demo))
    assert gaps.loc[2, "Reason"].startswith(f"MLFS covers {mlfs_pct:.1f}% (gate 90%)")

    page.toggle(key="gaps_show_bootstrap").set_value(True).run()
    with_bootstrap = gap_table(page)
    expected = with_bootstrap[with_bootstrap["Status"] == "bootstrap (expected)"]
    assert len(expected) > 10
    assert {day.month for day in expected["Date"]} <= {10, 11}


def test_filters_narrow_the_gap_table(page):
    page.multiselect(key="gaps_stages").set_value(["mlfs"]).run()
    assert gap_table(page)["Date"].tolist() == [DEC_9]

    page.multiselect(key="gaps_stages").set_value([]).run()
    page.multiselect(key="gaps_statuses").set_value(["missing"]).run()
    assert gap_table(page)["Date"].tolist() == [DEC_7]

    page.multiselect(key="gaps_statuses").set_value([]).run()
    page.multiselect(key="gaps_months").set_value(["2021-11"]).run()
    assert gap_table(page) is None
    assert "No dates below the mark match these filters." in [info.value for info in page.info]
    assert page.button(key="gaps_select").disabled

    page.toggle(key="gaps_show_bootstrap").set_value(True).run()  # November has bootstrap dates only
    assert set(gap_table(page)["Status"]) == {"bootstrap (expected)"}
    assert page.button(key="gaps_select").disabled


def test_select_these_gap_dates_puts_the_filtered_real_gaps_in_the_shared_selection(page):
    page.session_state[selection.SELECTED_DATES_KEY] = [dt.date(2021, 11, 2)]
    page.toggle(key="gaps_show_bootstrap").set_value(True).run()  # shown, but never selected
    page.button(key="gaps_select").click().run()
    assert page.session_state[selection.SELECTED_DATES_KEY] == [DEC_7, DEC_9]
    assert "replacing 1 selected before" in page.success[0].value

    page.multiselect(key="gaps_stages").set_value(["mlfs"]).run()
    page.button(key="gaps_select").click().run()
    assert page.session_state[selection.SELECTED_DATES_KEY] == [DEC_9]


# -- stale rows -----------------------------------------------------------------------------------


def test_stale_counts_show_every_category_by_table_and_date(page, shared_settings):
    expected = stale_on_file(shared_settings)
    metrics = {metric.label: metric.value for metric in page.metric}
    for category in CATEGORIES:
        rows = int(expected.loc[expected["category"] == category, "rows"].sum())
        assert rows > 0
        assert metrics[category] == f"{rows:,}"
    assert metrics["Total"] == f"{int(expected['rows'].sum()):,}"

    pivot = pivots(page)[0]
    assert pivot.iloc[-1]["Date"] == "Total" and pivot.iloc[-1]["Total"] == expected["rows"].sum()
    assert len(pivot) - 1 == len(expected.groupby(["game_date", "table_name"]))
    assert set(pivot["Table"]) == {"MLFS", "Predictions", ""}


def test_preview_shows_the_stale_rows_of_the_chosen_table_with_why(page):
    page.segmented_control(key="gaps_preview_table").set_value("mlfs").run()
    preview = preview_frame(page)
    assert "feature_version" in preview.columns and "model_version" not in preview.columns
    assert preview["stale because"].str.len().gt(0).all()
    assert {"orphan", "duplicate", "outdated", "old_version"} <= set(
        ", ".join(preview["stale because"]).split(", ")
    )


@pytest.mark.parametrize(
    ("operators", "user", "who"),
    [
        (None, None, LOCAL_USER),  # single-user local mode: the local user acts
        (f"{OPERATOR},ops@example.com", {"is_logged_in": True, "email": OPERATOR}, OPERATOR),
    ],
    ids=["single-user", "signed-in-operator"],
)
def test_delete_shows_what_will_go_then_deletes_it_and_records_who(
    app, demo_settings, monkeypatch, operators, user, who
):
    if operators:
        monkeypatch.setenv("BACKFILL_OPERATORS", operators)
    if user:
        app.user = user
    at = open_page(app)
    before = stale_on_file(demo_settings)
    december = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))
    at.date_input(key="gaps_delete_from").set_value(december[0])
    at.date_input(key="gaps_delete_to").set_value(december[1])
    at.button(key="gaps_delete_review_button").click().run()

    plan = pivots(at)[-1]
    total = int(before["rows"].sum())
    assert plan.iloc[-1]["Total"] == total
    for category in CATEGORIES:
        assert plan.iloc[-1][category] == before.loc[before["category"] == category, "rows"].sum()
    by_date_and_table = before.groupby(["game_date", "table_name"])["rows"].sum()
    assert [(row.Date, row.Table, row.Total) for row in plan.iloc[:-1].itertuples()] == [
        (str(day), stages.table_labels(demo_settings)[name], rows)
        for (day, name), rows in by_date_and_table.items()
    ]
    assert stale_on_file(demo_settings).equals(before)  # nothing deleted by the review
    assert "2021-12-15, 2021-12-17, 2021-12-20, 2021-12-21 may fall below the mark" in at.warning[0].value

    confirm = at.button(key="gaps_delete_confirm")
    assert confirm.label == f"Delete {total} stale rows"
    confirm.click().run()
    assert not at.exception
    assert stale_on_file(demo_settings).empty
    (done,) = [success.value for success in at.success if success.value.startswith("Deleted")]
    assert done == (
        f"Deleted {total} stale rows from 2021-12-01 to 2021-12-31, recorded in the run ledger as done by {who}."
    )
    assert {metric.label: metric.value for metric in at.metric}["Total"] == "0"  # cached counts dropped
    # Players whose only row was stale now have none: the page names the new gaps to backfill.
    (now_gaps,) = [warning.value for warning in at.warning if warning.value.startswith("Now below the mark")]
    assert "2021-12-15 MLFS, 2021-12-17 Predictions, 2021-12-20 MLFS, 2021-12-20 Predictions." in now_gaps
    assert set(gap_table(at)["Date"]) == {DEC_7, DEC_9, *(dt.date(2021, 12, day) for day in (15, 17, 20))}
    (action,) = Ledger(demo_settings.ledger).actions()
    assert (action["action"], action["who"]) == ("delete_stale", who)
    assert sum(action["details"]["rows_by_category"].values()) == total


def test_a_viewer_sees_the_delete_control_disabled_and_nothing_is_deleted(app, demo_settings, monkeypatch):
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    app.user = {"is_logged_in": True, "email": VIEWER}
    at = open_page(app)
    before = stale_on_file(demo_settings)
    review = at.button(key="gaps_delete_review_button")
    assert review.disabled
    assert at.date_input(key="gaps_delete_from").disabled
    (note,) = [info.value for info in at.info if "Only operators" in info.value]
    assert (
        note
        == f"Only operators may delete stale rows. Signed in as {VIEWER} (viewer). Operators: {OPERATOR}."
    )

    assert not [button for button in at.button if button.key == "gaps_delete_confirm"]
    assert stale_on_file(demo_settings).equals(before)
    assert not Path(demo_settings.ledger).exists() or not Ledger(demo_settings.ledger).actions()


def test_stale_rows_that_change_after_the_review_are_not_deleted(app, demo_settings):
    page = open_page(app)
    page.button(key="gaps_delete_review_button").click().run()
    warehouse = DuckDBWarehouse(demo_settings, demo_settings.warehouse)
    try:  # someone else cleans December between the review and the confirmation
        delete_stale(warehouse, demo_settings, dt.date(2021, 12, 15), dt.date(2021, 12, 31))
    finally:
        warehouse.close()
    remaining = stale_on_file(demo_settings)
    page.button(key="gaps_delete_confirm").click().run()
    assert "changed since the review" in page.warning[0].value
    assert stale_on_file(demo_settings).equals(remaining)
    assert not Path(demo_settings.ledger).exists() or not Ledger(demo_settings.ledger).actions()
    assert pivots(page)[-1].iloc[-1]["Total"] == remaining["rows"].sum()  # the new counts


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (
            "2021-12-31",
            "2021-12-01",
            "Cannot delete: range is reversed: start 2021-12-31 is after end 2021-12-01.",
        ),
        ("2021-12-01", "2099-01-01", "Cannot delete: date 2099-01-01 is in the future."),
    ],
)
def test_a_bad_deletion_range_is_one_line_next_to_the_control(page, start, end, message):
    page.date_input(key="gaps_delete_from").set_value(dt.date.fromisoformat(start))
    page.date_input(key="gaps_delete_to").set_value(dt.date.fromisoformat(end)).run()
    assert not page.exception
    assert [error.value for error in page.error] == [message]
    assert page.button(key="gaps_delete_review_button").disabled


# -- exports --------------------------------------------------------------------------------------


def record_a_run(ledger_path: str) -> str:
    ledger = Ledger(ledger_path)
    run_id = ledger.create_run(
        params={"dates": [DEC_7.isoformat()], "stages": ["predictions"]},
        items=[("predictions", DEC_7)],
        created_by=OPERATOR,
        warehouse="demo",
    )
    ledger.record_items(run_id, "predictions", {DEC_7: {"status": "failed", "attempts": 4}})
    ledger.finish_run(run_id, "failed", "1 failed")
    return run_id


def test_every_export_the_page_serves_parses_back_to_the_report_gaps(app, demo_settings, served):
    run_id = record_a_run(demo_settings.ledger)
    at = open_page(app)
    assert [button.label for button in at.get("download_button")] == ["CSV", "Excel", "JSON", "Markdown"]
    warehouse = DuckDBWarehouse(demo_settings, demo_settings.warehouse)
    try:
        bounds = data_bounds(warehouse)
        report = gap_report(warehouse, demo_settings, *bounds)
    finally:
        warehouse.close()
    real = {
        (day.isoformat(), stage)
        for day, stage in zip(report.real_gaps["game_date"], report.real_gaps["stage"])
    }
    assert {day for day, _ in real} == {"2021-12-07", "2021-12-09"}
    files = {name.rsplit(".", 1)[1]: call() for name, (_, call) in served.items()}
    assert set(served) == {
        f"gap-report_{bounds[0]}_{bounds[1]}.{fmt}" for fmt in ("csv", "xlsx", "json", "md")
    }

    def real_gaps(frame: pd.DataFrame) -> set[tuple[str, str]]:
        frame = frame[~frame["expected"].astype(bool)]
        return {(str(day)[:10], stage) for day, stage in zip(frame["game_date"], frame["stage"])}

    assert real_gaps(pd.read_csv(io.BytesIO(files["csv"]))) == real
    assert real_gaps(pd.read_excel(io.BytesIO(files["xlsx"]), sheet_name="Gaps")) == real
    document = json.loads(files["json"])
    assert real_gaps(pd.DataFrame(document["gaps"])) == real
    assert [run["run_id"] for run in document["runs"]] == [run_id]
    markdown = files["md"].decode()
    gaps_section = markdown.split("## Gaps")[1].split("## Stale rows")[0]
    for day, _ in real:
        assert day in gaps_section
    runs_section = markdown.split("## Runs")[1]
    assert f"- {run_id}, by {OPERATOR}" in runs_section and "1 failed" in runs_section
    assert "## Coverage by month" in markdown and "| 2021-12 |" in markdown


def test_a_month_period_names_its_files_and_reports_only_that_month(page, served):
    page.segmented_control(key="gaps_period_kind").set_value("Month").run()
    assert page.selectbox(key="gaps_period_month").value == "2021-12"  # the month of the latest gap
    page.selectbox(key="gaps_period_month").set_value("2021-11").run()
    name = "gap-report_2021-11-01_2021-11-30.json"
    assert name in served
    document = json.loads(served[name][1]())
    assert document["period"] == {"start": "2021-11-01", "end": "2021-11-30"}
    assert not [gap for gap in document["gaps"] if not gap["expected"]]
    assert document["runs"] is None  # no ledger file yet, and none was created


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("2021-12-31", "2021-12-01", "range is reversed: start 2021-12-31 is after end 2021-12-01"),
        ("2021-12-01", "2099-12-31", "date 2099-12-31 is in the future"),
        ("2020-01-01", "2021-12-31", "range of 731 days is over the maximum of 400 days"),
        (
            "2019-01-01",
            "2019-01-31",
            "no data from 2019-01-01 to 2019-01-31; the warehouse holds 2021-10-19 to 2022-04-10",
        ),
    ],
    ids=["reversed", "future", "too-long", "no-data"],
)
def test_a_bad_custom_period_is_one_line_and_generates_nothing(page, served, start, end, message):
    page.segmented_control(key="gaps_period_kind").set_value("Custom").run()
    served.clear()
    page.date_input(key="gaps_period_start").set_value(dt.date.fromisoformat(start))
    page.date_input(key="gaps_period_end").set_value(dt.date.fromisoformat(end)).run()
    assert not page.exception
    (error,) = page.error
    assert error.value == f"No report: {message}."
    assert not page.get("download_button")
    assert served == {}


# -- helpers --------------------------------------------------------------------------------------


def test_periods_are_clamped_to_the_data_and_listed_newest_first():
    bounds = (dt.date(2021, 10, 19), dt.date(2022, 4, 10))
    assert helpers.season_period(2021, bounds) == bounds
    assert helpers.month_period("2022-04", bounds) == (dt.date(2022, 4, 1), dt.date(2022, 4, 10))
    assert helpers.month_period("2022-02", bounds) == (dt.date(2022, 2, 1), dt.date(2022, 2, 28))
    assert helpers.months_between(bounds) == [
        "2022-04",
        "2022-03",
        "2022-02",
        "2022-01",
        "2021-12",
        "2021-11",
        "2021-10",
    ]
    assert helpers.seasons_between((dt.date(2019, 10, 22), dt.date(2022, 4, 10))) == [2021, 2020, 2019]
    assert helpers.month_label("2021-12") == "Dec 2021"


def test_stale_pivot_has_a_total_row_and_every_category_column():
    stale = pd.DataFrame(
        {
            "game_date": [DEC_7, DEC_7, DEC_9],
            "table_name": ["ml_feature_store", "ml_feature_store", "player_prop_predictions"],
            "category": ["orphan", "duplicate", "null_field"],
            "rows": [3, 2, 1],
        }
    )
    pivot = helpers.stale_pivot(stale, TABLE_LABELS)
    assert list(pivot.columns) == ["Date", "Table", *CATEGORIES, "Total"]
    assert pivot["Total"].tolist() == [5, 1, 6]
    assert pivot.iloc[-1]["orphan"] == 3 and pivot.iloc[-1]["outdated"] == 0
    assert helpers.category_text(stale) == "orphan 3, duplicate 2, null_field 1"
    assert helpers.stale_pivot(stale.iloc[0:0], TABLE_LABELS).empty
    assert helpers.stale_by_category(stale.iloc[0:0]) == dict.fromkeys(CATEGORIES, 0)


def test_the_hand_off_preview_keeps_its_headings_below_the_page_title():
    text = "# Prediction coverage report\n\n## Gaps\n\n- 2021-12-07 # not a heading"
    assert helpers.preview_markdown(text) == (
        "### Prediction coverage report\n\n#### Gaps\n\n- 2021-12-07 # not a heading"
    )


def test_the_gap_filters_are_kept_in_the_url_and_a_link_opens_them(app):
    app.query_params["stages"] = "predictions"
    app.query_params["statuses"] = "blocked,nonsense"
    at = open_page(app)
    assert at.multiselect(key="gaps_stages").value == ["predictions"]
    assert at.multiselect(key="gaps_statuses").value == ["blocked"]  # what the filter offers, only
    at.multiselect(key="gaps_months").set_value(["2021-12"]).run()
    assert at.query_params["months"] == "2021-12" and at.query_params["statuses"] == "blocked"
