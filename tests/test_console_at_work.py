"""The console at work (issue 12), through AppTest and the backend: a busy warehouse is waited out
(never a traceback), an overlapping launch is refused naming its holder, a new session finds the
active run."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from backfill import upstream_rerun
from backfill.config import Settings
from backfill.demo import INCIDENT_SEASON, MISSING_PREDICTION_DATES, THIN_MLFS_DATE, THIN_MLFS_SHARE
from backfill.demo_calendar import season_days
from backfill.holds import DatesHeld, held_dates
from backfill.launch import run_here, submit
from backfill.ledger import Ledger
from backfill.outage import outage_of
from backfill.request import BackfillRequest
from backfill.runner import create_run
from backfill.warehouse import connect
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.console_app import LOCAL_USER, console_app, follow_to_the_end, texts
from tests.lock_holder import warehouse_held

DEC_7, DEC_9 = dt.date(2021, 12, 7), dt.date(2021, 12, 9)
BACKFILL_PAGE = "pages/backfill.py"
RUNS_PAGE = "pages/runs.py"
COVERAGE_PAGE = "pages/coverage.py"


def _queued_run(settings: Settings, days: list[dt.date], who: str) -> str:
    """A run recorded as a launch records it, whose worker has not started yet (it holds its dates)."""
    request = BackfillRequest.build(settings, dates=days)
    return create_run(Ledger(settings.ledger), connect(settings), request, who)


def _status_labels(at) -> str:
    """Labels of the running status boxes (the waiting state shows one, with a spinner)."""
    return " | ".join(status.label for status in at.status if status.state == "running")


def test_a_page_opened_while_another_process_holds_the_warehouse_waits_instead_of_a_traceback(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    with warehouse_held(settings.warehouse):
        at.run()
        assert not at.exception
        assert "Waiting for the warehouse" in _status_labels(at)
        assert not at.get("metric"), "no figures before the warehouse was ever read"
    at.run()
    assert not at.exception
    assert "Waiting for the warehouse" not in _status_labels(at)
    assert [metric.label for metric in at.metric][:1] == ["Seasons"]


@pytest.mark.slow
def test_figures_read_once_stay_on_screen_with_their_time_while_the_warehouse_is_held(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    monkeypatch.setenv("BACKFILL_CACHE_TTL_S", "0")  # every rerun reads the warehouse (none reused)
    at.run()
    figures = [metric.value for metric in at.metric]
    with warehouse_held(settings.warehouse):
        at.run()
        assert not at.exception
        assert "Waiting for the warehouse" in _status_labels(at)
        assert [metric.value for metric in at.metric] == figures
        assert "Showing data as of" in texts(at.caption)


def test_a_lock_conflict_is_an_outage_to_wait_out_and_a_program_bug_is_not_an_outage(settings):
    with warehouse_held(settings.warehouse), pytest.raises(duckdb.IOException) as held:
        duckdb.connect(settings.warehouse)
    assert outage_of(held.value).waiting
    assert outage_of(KeyError("stage")) is None
    with pytest.raises(duckdb.CatalogException) as missing:
        duckdb.connect(":memory:").execute("SELECT * FROM no_such_table")
    permanent = outage_of(missing.value)
    assert not permanent.waiting and "\n" not in permanent.text


def test_a_launch_overlapping_a_live_run_is_refused_before_it_starts_naming_the_holder(settings):
    holder = _queued_run(settings, [DEC_7], "bob@example.com")
    runs_before = len(Ledger(settings.ledger).list_runs())
    with pytest.raises(DatesHeld) as refusal:
        submit(settings, BackfillRequest.build(settings, dates=[DEC_7, DEC_9]), "alice@example.com")
    assert f"held by run {holder}" in str(refusal.value)
    assert "started by bob@example.com" in str(refusal.value)
    assert "2021-12-07" in str(refusal.value) and "2021-12-09" not in str(refusal.value)
    assert len(Ledger(settings.ledger).list_runs()) == runs_before, "nothing recorded"


def test_dates_no_live_run_holds_are_free(settings):
    _queued_run(settings, [DEC_7], "bob@example.com")
    ledger = Ledger(settings.ledger)
    url = connect(settings).url
    assert held_dates(ledger, url, [("mlfs", DEC_9), ("predictions", DEC_9)]) == []
    assert held_dates(ledger, "/elsewhere.duckdb", [("mlfs", DEC_7)]) == []


def test_a_new_session_on_the_backfill_page_follows_the_newest_active_run(settings, tmp_path, monkeypatch):
    run_id = _queued_run(settings, [DEC_7], "bob@example.com")
    at = console_app(settings, tmp_path, monkeypatch)
    at.run()
    at = at.switch_page(BACKFILL_PAGE).run()
    assert not at.exception
    assert f"Run {run_id}" in [header.value for header in at.subheader]
    assert at.query_params["run"] == run_id
    # The default dates are the demo's newest gap month, December 2021 (7th and 9th): the run holds the 7th.
    assert any(f"held by run {run_id}" in warning.value for warning in at.warning)
    assert at.button(key="backfill_launch").disabled


# -- rerun with upstream ----------------------------------------------------------------------


def _blocked_predictions_of_dec_9(settings: Settings) -> str:
    """Predictions of Dec 9 alone: the demo's MLFS covers too little of Dec 9, so the gate blocks it."""
    request = BackfillRequest.build(settings, dates=[DEC_9], stages=["predictions"])
    return run_here(settings, request, LOCAL_USER, sleep=lambda seconds: None).run_id


def test_a_blocked_runs_rerun_with_upstream_redoes_the_upstream_stage_first(settings):
    blocked = _blocked_predictions_of_dec_9(settings)
    request = upstream_rerun.run_request(Ledger(settings.ledger), blocked, settings.pipeline)
    pipeline = settings.pipeline
    predictions = pipeline.stage("predictions")
    assert request.dates == (DEC_9,)
    assert request.stages == (pipeline.upstream(predictions).name, predictions.name)


@pytest.mark.slow
def test_rerun_with_upstream_on_the_runs_page_ends_with_every_item_done(settings, tmp_path, monkeypatch):
    blocked = _blocked_predictions_of_dec_9(settings)
    at = console_app(settings, tmp_path, monkeypatch)
    at.run()
    at.query_params["run"] = blocked
    at = at.switch_page(RUNS_PAGE).run()
    assert not at.exception
    at.button(key="runs_rerun_upstream").click().run()
    ledger = Ledger(settings.ledger)
    rerun = ledger.list_runs()[0]
    assert rerun.parent_run_id == blocked
    assert follow_to_the_end(at, ledger, rerun.run_id) == "succeeded"
    assert ledger.item_counts(rerun.run_id) == {"done": len(settings.pipeline.stage_names)}


@pytest.mark.slow
def test_the_drill_down_of_a_blocked_date_offers_rerun_with_upstream_and_launches_it(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    at.run()
    at.query_params["date"] = DEC_9.isoformat()
    at = at.switch_page(COVERAGE_PAGE).run()
    (button,) = [button for button in at.button if button.key.startswith("coverage_rerun_upstream_")]
    assert "then" in button.label
    button.click().run()
    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    assert run.params["dates"] == [DEC_9.isoformat()]
    assert tuple(run.params["stages"]) == settings.pipeline.stage_names
    assert follow_to_the_end(at, ledger, run.run_id) == "succeeded"


def test_a_change_by_another_process_shows_on_the_next_rerun_in_every_figure_alike(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    monkeypatch.setenv("BACKFILL_CACHE_TTL_S", "0")  # no reading reused: each rerun looks at the fingerprint
    at.run()
    gap_metric = next(metric for metric in at.metric if metric.label == "Gap dates")
    assert gap_metric.value == "2"  # the demo recipe: December 7 and 9
    lost = dt.date(2022, 1, 5)
    other = DuckDBWarehouse(settings, settings.warehouse)  # another process's connection, as a CLI's
    try:
        predictions = settings.pipeline.stage_names[-1]
        other.execute(f"DELETE FROM {{{predictions}}} WHERE game_date = @day", {"day": lost})
    finally:
        other.close()
    at.run()
    gap_metric = next(metric for metric in at.metric if metric.label == "Gap dates")
    links = [element.proto.label for element in at.get("page_link")]
    assert gap_metric.value == "3"
    assert any(label.startswith(f"{lost:%a %Y-%m-%d}") for label in links), "the gap list agrees"


def test_overview_lists_the_months_with_gaps_worst_first(settings, demo, tmp_path, monkeypatch):
    # A second incident beside the demo's December, worse than it: every prediction of three
    # January dates is lost (December lost two dates), so the later month comes first.
    january_days = [day for day in season_days(INCIDENT_SEASON) if (day.year, day.month) == (2022, 1)][:3]
    demo.execute("DELETE FROM {pred} WHERE game_date IN UNNEST(@days)", {"days": january_days})
    demo.close()
    # The recipes: a date that lost every prediction (its MLFS whole) is missing, so its month is;
    # December's MLFS lost a share of one date's rows, under ok_pct, so that month is partial.
    assert settings.ok_pct > 100 * THIN_MLFS_SHARE
    december, january = f"{MISSING_PREDICTION_DATES[0]:%Y-%m}", f"{january_days[0]:%Y-%m}"
    coverage = _prediction_coverage_by_month(settings)
    missing = sorted([december, january], key=coverage.__getitem__)  # the lower coverage first
    expected = [(month, "Predictions", "missing") for month in missing] + [
        (f"{THIN_MLFS_DATE:%Y-%m}", "MLFS", "partial")
    ]

    at = console_app(settings, tmp_path, monkeypatch).run()
    assert not at.exception
    (worst,) = [table.value for table in at.table if "Gap dates" in table.value.columns]
    assert list(zip(worst["Period"], worst["Stage"], worst["Status"], strict=True)) == expected
    assert list(worst["Coverage %"][:2]) == pytest.approx([coverage[month] for month in missing], abs=0.05)
    assert "None" not in worst.astype(str).to_numpy().ravel().tolist()
    assert missing == [january, december], "the recipes make January the worse month"
    january_note = "3 gap dates: " + ", ".join(f"{day:%b %d} missing" for day in january_days)
    assert january_note in worst["Gap dates"].tolist()


def _prediction_coverage_by_month(settings: Settings) -> dict[str, float]:
    """Player-game coverage of predictions per month, counted straight from the tables: the share of
    (date, player) pairs of the reference with a prediction row."""
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    try:
        played = warehouse.query("SELECT DISTINCT game_date, player_lookup FROM {pgs}")
        predicted = warehouse.query("SELECT DISTINCT game_date, player_lookup FROM {pred}")
    finally:
        warehouse.close()
    pairs = played.merge(predicted.assign(covered=True), how="left", on=["game_date", "player_lookup"])
    months = pairs.groupby(pd.to_datetime(pairs["game_date"]).dt.strftime("%Y-%m"))["covered"]
    return (100 * months.count() / months.size()).to_dict()
