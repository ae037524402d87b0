"""The Runs page through AppTest on a private demo copy and ledger, the detached resume behind it,
and the tables it shows.

Runs to look at are made in-process (``run_here``); the page's own actions start real detached
workers, which the tests follow to the end by rerunning the page.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backfill import launch
from backfill.access import NotAllowed
from backfill.config import Settings
from backfill.demo import create_declared_tables
from backfill.errors import BadInput
from backfill.ledger import AlreadyLaunched, Ledger, now_utc
from backfill.pipeline import load_pipeline
from backfill.replay import replay_refusal, settings_for_run
from backfill.request import BackfillRequest
from backfill.runner import create_run
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.builtin import thin_date_gate_reason, thin_date_players
from tests.console_app import APP, LOCAL_USER, console_app, follow_to_the_end, texts
from tests.faulty import FaultyWarehouse
from ui import runs, stages

RUNS_PAGE = "pages/runs.py"
DEC_7, DEC_9, DEC_15 = (dt.date(2021, 12, day) for day in (7, 9, 15))
OPERATOR, VIEWER = "alice@example.com", "viewer@example.com"


@pytest.fixture
def app(settings, tmp_path, monkeypatch) -> AppTest:
    return console_app(settings, tmp_path, monkeypatch)


def blocked_run(settings) -> str:
    """Predictions of Dec 7 and Dec 9 before MLFS: Dec 7 done, Dec 9 blocked by the gate."""
    request = BackfillRequest.build(settings, dates=[DEC_7, DEC_9], stages=["predictions"])
    return launch.run_here(settings, request, LOCAL_USER, sleep=lambda seconds: None).run_id


def queued_run(settings) -> str:
    """A run recorded but never started (no worker): queued, and alive for its first minute."""
    request = BackfillRequest.build(settings, dates=[DEC_7], stages=["mlfs"])
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    return create_run(Ledger(settings.ledger), warehouse, request, LOCAL_USER)


def interrupted_run(settings) -> str:
    """A queued run whose worker never came: two minutes on, the ledger marks it interrupted."""
    run_id = queued_run(settings)
    later = Ledger(settings.ledger, clock=lambda: now_utc() + dt.timedelta(minutes=2))
    assert later.detect_interrupted() == [run_id]
    return run_id


def open_page(at: AppTest, run_id: str | None = None) -> AppTest:
    if run_id is not None:
        at.query_params["run"] = run_id
    return at.switch_page(RUNS_PAGE).run()


def items_frame(at: AppTest):
    (frame,) = [df.value for df in at.dataframe if "Attempts" in df.value.columns]
    return frame


# -- the page ---------------------------------------------------------------------------------


def test_without_runs_the_page_says_so(app):
    at = open_page(app)
    assert not at.exception
    assert "No runs recorded yet." in texts(at.info)


def test_history_and_the_selected_runs_dates_by_stages(app, settings, read_only_demo):
    run_id = blocked_run(settings)
    at = open_page(app)
    assert not at.exception
    (history,) = [df.value for df in at.dataframe if "Outcome" in df.value.columns]
    row = history.iloc[0]
    assert (row["Run"], row["Status"], row["By"], row["Gate"]) == (run_id, "blocked", LOCAL_USER, "90%")
    assert row["Dates"] == "2: 2021-12-07, 2021-12-09" and row["Stages"] == "Predictions"
    assert at.selectbox(key="runs_selected").value == run_id  # the newest run opens by default
    assert at.query_params["run"] == run_id

    items = items_frame(at).set_index("Date")
    assert items.loc["2021-12-07", "Status"] == "done" and items.loc["2021-12-07", "Attempts"] == 1
    assert items.loc["2021-12-07", "Rows written"] > 0 and items.loc["2021-12-07", "After %"] == 100.0
    assert (
        items.loc["2021-12-09", "Status"] == "blocked" and items.loc["2021-12-09", "Error class"] == "blocked"
    )
    assert thin_date_gate_reason(thin_date_players(read_only_demo)) in items.loc["2021-12-09", "Error"]
    assert "2 of 2 work items finished: 1 done, 1 blocked" in [bar.text for bar in at.get("progress")]


@pytest.mark.slow
def test_rerun_failed_dates_starts_a_run_of_only_the_unfinished_dates(app, settings):
    blocked_id = blocked_run(settings)
    at = open_page(app)
    assert at.button(key="runs_rerun_failed").label == "Rerun failed dates (1)"
    assert at.button(key="runs_rerun_transient").disabled  # nothing failed transiently
    assert "Blocked dates wait for MLFS" in texts(at.caption)
    at.button(key="runs_rerun_failed").click().run()
    ledger = Ledger(settings.ledger)
    rerun = ledger.list_runs()[0]
    assert rerun.run_id != blocked_id
    assert rerun.params["dates"] == ["2021-12-09"] and rerun.parent_run_id == blocked_id
    assert f"Started run {rerun.run_id}: a rerun of run {blocked_id}" in texts(at.success)
    assert at.selectbox(key="runs_selected").value == rerun.run_id  # the new run is shown
    assert at.query_params["run"] == rerun.run_id

    assert follow_to_the_end(at, ledger, rerun.run_id) == "blocked"  # MLFS of Dec 9 is still short
    assert f"Rerun of {blocked_id}" in [button.label for button in at.button]


@pytest.mark.slow
def test_rerun_transient_failures_takes_only_those(app, settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse, poison={DEC_15})

    def time_out_dec_7(params):
        if DEC_7 in params.get("dates", []) and DEC_15 not in params["dates"]:
            raise TimeoutError("timed out")

    warehouse.on_execute = time_out_dec_7
    request = BackfillRequest.build(settings, dates=[DEC_7, DEC_15], stages=["mlfs"], max_attempts=1)
    failed_id = launch.run_here(settings, request, LOCAL_USER, warehouse=warehouse).run_id
    at = open_page(app)
    assert at.button(key="runs_rerun_failed").label == "Rerun failed dates (2)"
    assert at.button(key="runs_rerun_transient").label == "Rerun transient failures (1)"
    at.button(key="runs_rerun_transient").click().run()
    ledger = Ledger(settings.ledger)
    rerun = ledger.list_runs()[0]
    assert rerun.params["dates"] == ["2021-12-07"] and rerun.parent_run_id == failed_id
    assert follow_to_the_end(at, ledger, rerun.run_id) == "succeeded"


@pytest.mark.slow
def test_resume_finishes_an_interrupted_run_in_a_new_process(app, settings):
    run_id = interrupted_run(settings)
    at = open_page(app, run_id)
    assert "the run's process stopped" in texts(at.caption)
    assert not at.button(key="runs_resume").disabled
    assert at.button(key="runs_cancel").disabled
    at.button(key="runs_resume").click().run()
    assert f"Resumed run {run_id}" in texts(at.success)
    ledger = Ledger(settings.ledger)
    assert follow_to_the_end(at, ledger, run_id) == "succeeded"
    assert [item["status"] for item in ledger.items(run_id)] == ["done"]
    assert ledger.actions()[0]["action"] == "resume" and ledger.actions()[0]["who"] == LOCAL_USER


def test_cancel_asks_a_queued_run_to_stop(app, settings):
    run_id = queued_run(settings)
    at = open_page(app, run_id)
    assert at.button(key="runs_resume").disabled and at.button(key="runs_rerun_failed").disabled
    at.button(key="runs_cancel").click().run()
    ledger = Ledger(settings.ledger)
    assert ledger.get_run(run_id).cancel_requested
    assert (ledger.actions()[0]["action"], ledger.actions()[0]["who"]) == ("cancel", LOCAL_USER)
    assert "cancel requested" in texts(at.caption)
    cancel = at.button(key="runs_cancel")  # done: not offered twice, and says why
    assert cancel.disabled and "Cancel requested already" in cancel.help
    assert [action["action"] for action in ledger.actions()].count("cancel") == 1


def test_viewer_sees_every_action_disabled_and_the_backend_refuses(app, settings, monkeypatch):
    blocked_id, queued_id = blocked_run(settings), queued_run(settings)
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    app.user = {"is_logged_in": True, "email": VIEWER}
    at = open_page(app, blocked_id)
    assert f"{VIEWER} is not an operator" in texts(at.info)
    for key in ("runs_rerun_failed", "runs_rerun_transient", "runs_resume", "runs_cancel"):
        assert at.button(key=key).disabled
    at.selectbox(key="runs_selected").set_value(queued_id).run()
    assert at.button(key="runs_cancel").disabled

    guarded = settings.replace(operators=(OPERATOR,))
    with pytest.raises(NotAllowed, match=f"{VIEWER} may not rerun backfills"):
        launch.rerun(guarded, blocked_id, VIEWER)
    with pytest.raises(NotAllowed, match=f"{VIEWER} may not cancel runs"):
        launch.cancel(guarded, queued_id, VIEWER)
    ledger = Ledger(settings.ledger)
    assert len(ledger.list_runs()) == 2 and not ledger.get_run(queued_id).cancel_requested


def test_date_link_shows_only_the_runs_that_touched_that_date(app, settings):
    blocked_id = blocked_run(settings)
    request = BackfillRequest.build(settings, dates=[DEC_15], stages=["mlfs"])
    other_id = launch.run_here(settings, request, LOCAL_USER, sleep=lambda seconds: None).run_id
    app.query_params["date"] = "2021-12-09"
    at = open_page(app)
    (history,) = [df.value for df in at.dataframe if "Outcome" in df.value.columns]
    assert list(history["Run"]) == [blocked_id]
    assert "1 of 2 runs touched 2021-12-09" in texts(at.caption)
    at.date_input(key="runs_date").set_value(None).run()
    (history,) = [df.value for df in at.dataframe if "Outcome" in df.value.columns]
    assert list(history["Run"]) == [other_id, blocked_id]
    assert "date" not in at.query_params


@pytest.mark.parametrize(
    ("name", "raw", "warning"),
    [
        ("run", "no-such-run", "Ignored the link's run 'no-such-run': no such run in the ledger."),
        ("date", "2021-13-45", "Ignored the link's date '2021-13-45': expected YYYY-MM-DD."),
    ],
)
def test_bad_links_warn_in_one_line(app, settings, name, raw, warning):
    run_id = blocked_run(settings)
    app.query_params[name] = raw
    at = open_page(app)
    assert not at.exception
    assert [w.value for w in at.warning] == [warning]
    assert at.selectbox(key="runs_selected").value == run_id


# -- the detached resume ----------------------------------------------------------------------


def test_resume_detached_refuses_runs_that_are_not_interrupted_and_non_operators(settings):
    done_id = blocked_run(settings)
    with pytest.raises(BadInput, match="is blocked; only interrupted runs can be resumed"):
        launch.resume_detached(settings, done_id, LOCAL_USER)
    interrupted_id = interrupted_run(settings)
    with pytest.raises(NotAllowed):
        launch.resume_detached(settings.replace(operators=(OPERATOR,)), interrupted_id, VIEWER)
    assert Ledger(settings.ledger).get_run(interrupted_id).status == "interrupted"


def test_a_requeued_run_waits_for_its_worker_a_full_timeout_again(settings):
    run_id = interrupted_run(settings)
    ledger = Ledger(settings.ledger)
    ledger.requeue(run_id)
    run = ledger.get_run(run_id)
    assert (run.status, run.pid, run.finished_at) == ("queued", None, None)
    assert ledger.detect_interrupted() == []  # not taken for dead because it was created long ago
    later = Ledger(settings.ledger, clock=lambda: now_utc() + dt.timedelta(minutes=2))
    assert later.detect_interrupted() == [run_id]


# -- tables -----------------------------------------------------------------------------------


def test_params_read_as_one_line():
    params = BackfillRequest(
        dates=tuple(dt.date(2021, 12, day) for day in range(1, 32)), stages=("mlfs", "predictions")
    ).to_params()
    assert runs.params_text(params, stages.labels(Settings())) == (
        "31 dates (2021-12-01 to 2021-12-31) x MLFS, Predictions; gate 90%; "
        "up to 4 attempts (retry delays 30/60/120 s); batches sized by the work"
    )
    # A recorded run names the size it chose (or was asked).
    assert runs.params_text(params | {"batch_size": 31}).endswith("batches of 31 dates")
    one = params | {"dates": ["2021-12-07"], "max_attempts": 1, "batch_size": 1}
    assert runs.params_text(one).startswith("1 date (2021-12-07) x ")
    assert "up to 1 attempt (" in runs.params_text(one) and runs.params_text(one).endswith(
        "batches of 1 date"
    )
    skipped = params | {"skip_gates": True, "dates": ["2021-12-09", "2021-12-07"]}
    assert runs.gate_text(skipped) == "skipped"
    assert runs.span_text(skipped["dates"]) == "2021-12-07, 2021-12-09"


GATE_MESSAGE = "MLFS covers 80.0%, below the 90% gate"
"""A blocked item's message, made up: the grid shows whatever the run recorded."""


def test_progress_counts_every_final_status_as_finished():
    counts = {"done": 3, "skipped": 1, "blocked": 1, "failed": 1, "cancelled": 1, "running": 2, "pending": 1}
    assert runs.finished(counts) == (7, 10)
    assert runs.progress_text(counts) == (
        "7 of 10 work items finished: 1 pending, 2 running, 3 done, 1 skipped, 1 blocked, 1 failed, 1 cancelled"
    )


def test_status_grid_colours_every_item_status_the_same_way_in_every_run():
    items = [
        {"game_date": "2021-12-07", "stage": "mlfs", "status": "done", "attempts": 1, "duration_s": 0.4,
         "rows_written": 170, "coverage_before": 98.0, "coverage_after": 100.0, "error_class": None,
         "error_message": None},
        {"game_date": "2021-12-07", "stage": "predictions", "status": "blocked", "attempts": 0,
         "duration_s": None, "rows_written": None, "coverage_before": 0.0, "coverage_after": None,
         "error_class": "blocked", "error_message": GATE_MESSAGE},
    ]  # fmt: skip
    spec = runs.status_grid(items, stages.labels(Settings())).to_dict()
    assert spec["encoding"]["color"]["scale"]["domain"] == list(runs.ITEM_COLORS)
    assert spec["encoding"]["y"]["sort"] == ["MLFS", "Predictions"]
    cells = runs.grid_data(items).set_index("stage")
    assert cells.loc["mlfs", "coverage_text"] == "98.0% → 100.0%"
    assert cells.loc["predictions", "error_text"] == f"[blocked] {GATE_MESSAGE}"


# -- replays judged by the pipeline's meaning (issue 23) -------------------------------------------

TEAM_PIPELINE = Path(__file__).resolve().parents[1] / "examples" / "team_pipeline" / "pipeline.toml"
PREDICTIONS_JOB = '"jobs/player_prop_predictions_backfill.py"'


def _team_interrupted_run(settings, tmp_path, monkeypatch) -> tuple[str, Path]:
    """An interrupted run recorded with a copy of the team's pipeline file (its jobs never start)."""
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(TEAM_PIPELINE.read_text())
    monkeypatch.setenv("BACKFILL_PIPELINE", str(pipeline))
    team = settings.replace(pipeline=load_pipeline(pipeline))
    adapter = DuckDBWarehouse(team, team.warehouse)
    try:
        create_declared_tables(adapter, team)  # the Grades table, as `demo --pipeline` makes it
    finally:
        adapter.close()
    return interrupted_run(team), pipeline


def test_a_comment_and_a_label_in_the_pipeline_file_leave_resume_enabled(
    app, settings, tmp_path, monkeypatch
):
    run_id, pipeline = _team_interrupted_run(settings, tmp_path, monkeypatch)
    text = pipeline.read_text()
    pipeline.write_text("# reviewed on Monday\n" + text.replace('label = "Grades"', 'label = "Grading"'))
    at = open_page(app, run_id)
    assert not at.exception
    assert not at.button(key="runs_resume").disabled
    assert "changed" not in texts(at.caption)
    # and the backend agrees: the resume would go ahead, with the edited file
    recorded = settings_for_run(settings, Ledger(settings.ledger).get_run(run_id).params, run_id)
    assert recorded.pipeline.label("grading") == "Grading"


def test_a_changed_argv_disables_resume_and_names_the_change_before_the_click(
    app, settings, tmp_path, monkeypatch
):
    run_id, pipeline = _team_interrupted_run(settings, tmp_path, monkeypatch)
    pipeline.write_text(pipeline.read_text().replace(PREDICTIONS_JOB, '"jobs/predictions_v2.py"'))
    at = open_page(app, run_id)
    resume = at.button(key="runs_resume")
    assert resume.disabled
    assert "stage predictions: processor argv changed" in resume.help
    assert "stage predictions: processor argv changed" in texts(at.caption)
    with pytest.raises(BadInput, match="stage predictions: processor argv changed"):
        launch.resume_detached(settings, run_id, LOCAL_USER)
    assert Ledger(settings.ledger).get_run(run_id).status == "interrupted"


def test_a_run_recorded_with_only_the_files_hash_is_judged_by_its_bytes(settings, tmp_path, monkeypatch):
    run_id, pipeline = _team_interrupted_run(settings, tmp_path, monkeypatch)
    ledger = Ledger(settings.ledger)
    params = ledger.get_run(run_id).params
    del params["context"]["pipeline_form"]  # as runs recorded before the meaning was kept
    assert replay_refusal(params, run_id) is None
    pipeline.write_text("# a comment\n" + pipeline.read_text())
    assert "has changed since (the file's text changed)" in replay_refusal(params, run_id)


# -- actions act once (issue 23) ------------------------------------------------------------------


def test_a_run_whose_rerun_is_under_way_offers_no_second_rerun_and_says_why(app, settings):
    blocked_id = blocked_run(settings)
    request = BackfillRequest.build(settings, dates=[DEC_9], stages=["mlfs", "predictions"])
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    child = create_run(Ledger(settings.ledger), warehouse, request, LOCAL_USER, parent_run_id=blocked_id)
    at = open_page(app, blocked_id)
    for key in ("runs_rerun_failed", "runs_rerun_upstream"):
        button = at.button(key=key)
        assert button.disabled, key
        assert f"Already rerun: run {child} is queued" in button.help


def test_a_repeated_rerun_click_records_no_second_run(settings, monkeypatch):
    spawned = []
    monkeypatch.setattr(launch, "spawn_worker", lambda settings, run_id: spawned.append(run_id))
    blocked_id = blocked_run(settings)
    first = launch.rerun_with_upstream(settings, blocked_id, LOCAL_USER, launch_key="click-7")
    with pytest.raises(AlreadyLaunched, match=f"it is run {first}"):
        launch.rerun_with_upstream(settings, blocked_id, LOCAL_USER, launch_key="click-7")
    with pytest.raises(AlreadyLaunched, match=f"it is run {first}"):
        launch.rerun(settings, blocked_id, LOCAL_USER, launch_key="click-7")
    assert [run.run_id for run in Ledger(settings.ledger).list_runs()] == [first, blocked_id]
    assert spawned == [first]


def test_runs_are_filtered_by_status_and_user_and_the_filters_are_kept_in_the_url(app, settings):
    blocked_id = blocked_run(settings)  # by LOCAL_USER, blocked
    other = settings.replace()
    request = BackfillRequest.build(other, dates=[DEC_7], stages=["mlfs"])
    done_id = launch.run_here(other, request, "bob@example.com", sleep=lambda seconds: None).run_id
    at = open_page(app)
    history = [df.value for df in at.dataframe if "Outcome" in df.value.columns][0]
    history = getattr(history, "data", history)
    assert set(history["Run"]) == {blocked_id, done_id}
    at.multiselect(key="runs_status_filter").set_value(["blocked"]).run()
    shown = [df.value for df in at.dataframe if "Outcome" in df.value.columns][0]
    assert list(getattr(shown, "data", shown)["Run"]) == [blocked_id]
    assert at.query_params["status"] == "blocked"
    at.multiselect(key="runs_status_filter").set_value([]).run()
    at.multiselect(key="runs_user_filter").set_value(["bob@example.com"]).run()
    shown = [df.value for df in at.dataframe if "Outcome" in df.value.columns][0]
    assert list(getattr(shown, "data", shown)["Run"]) == [done_id]
    # A fresh page with the link's filters starts filtered.
    fresh = AppTest.from_file(str(APP), default_timeout=60)  # the fixture's environment still holds
    fresh.query_params["user"] = "bob@example.com"
    again = fresh.switch_page(RUNS_PAGE).run()
    assert again.multiselect(key="runs_user_filter").value == ["bob@example.com"]
