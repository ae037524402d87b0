"""The Backfill page through AppTest on a private demo copy and ledger, and the helpers it decides with.

Launches start the real detached worker (``python -m backfill worker RUN_ID``) in its own process;
the test follows it by rerunning the page, as the browser's polling fragment would.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backfill import launch
from backfill.access import NotAllowed
from backfill.config import Settings
from backfill.launch import run_here, submit
from backfill.ledger import AlreadyLaunched, Ledger
from backfill.request import BackfillRequest
from tests.builtin import thin_date_gate_reason, thin_date_players
from tests.console_app import LOCAL_USER, console_app, follow_to_the_end, texts
from ui import auth, runs, selection

BACKFILL_PAGE = "pages/backfill.py"
DEC_1, DEC_7, DEC_9, DEC_31 = (dt.date(2021, 12, day) for day in (1, 7, 9, 31))
OPERATOR, VIEWER = "alice@example.com", "viewer@example.com"


@pytest.fixture
def app(settings, tmp_path, monkeypatch) -> AppTest:
    return console_app(settings, tmp_path, monkeypatch)


def open_page(at: AppTest) -> AppTest:
    at.run()
    return at.switch_page(BACKFILL_PAGE).run()


def sidebar_text(at: AppTest) -> str:
    """The sidebar's captions, read on the default page (AppTest keeps no sidebar after switch_page)."""
    return texts(at.run().sidebar.caption)


def progress_text(at: AppTest) -> str:
    return " | ".join(bar.text for bar in at.get("progress"))


def launch_clicked(at: AppTest) -> AppTest:
    return at.button(key="backfill_launch").click().run()


def refused_launch(settings: Settings, who: str | None) -> str:
    """What the backend says when someone who may not act launches anyway (a forged click)."""
    request = BackfillRequest.build(settings, dates=[DEC_7])
    with pytest.raises(NotAllowed) as refusal:
        submit(settings, request, who)
    return str(refusal.value)


# -- the page ---------------------------------------------------------------------------------


def test_page_offers_the_gap_dates_of_the_newest_month_when_nothing_is_selected(app):
    assert f"Single-user local mode: no operator list is configured, so you act as {LOCAL_USER}." in (
        sidebar_text(app)
    )
    at = app.switch_page(BACKFILL_PAGE).run()
    assert not at.exception
    assert at.segmented_control(key="backfill_source").value == "gaps"
    assert "2 gap dates:** 2021-12-07, 2021-12-09" in texts(at.markdown)
    assert "4 work items" not in texts(at.markdown)  # nothing planned until asked
    assert not at.button(key="backfill_launch").disabled


def test_coverage_selection_is_the_default_source(app):
    app.session_state[selection.SELECTED_DATES_KEY] = [DEC_9]
    at = open_page(app)
    assert at.segmented_control(key="backfill_source").value == "selection"
    assert "1 date selected on Coverage:** 2021-12-09" in texts(at.markdown)


def test_dry_run_shows_the_plan_and_writes_nothing(app, settings):
    before = Path(settings.warehouse).read_bytes()
    at = open_page(app)
    at.segmented_control(key="backfill_source").set_value("range").run()
    at.date_input(key="backfill_start").set_value(DEC_1)
    at.date_input(key="backfill_end").set_value(DEC_31).run()
    at.button(key="backfill_dry_run").click().run()
    assert not at.exception
    (plan,) = [frame.value for frame in at.dataframe if "Action" in frame.value.columns]
    assert len(plan) == 62  # 31 dates x 2 stages
    christmas_eve = plan[plan["Date"] == dt.date(2021, 12, 24)]
    assert set(christmas_eve["Action"]) == {"skip: no games"}
    dec_9_predictions = plan[(plan["Date"] == DEC_9) & (plan["Stage"] == "Predictions")].iloc[0]
    assert "judged after this run rebuilds MLFS" in dec_9_predictions["Gate"]
    assert plan["Stale rows to go"].sum() > 0
    summary = texts(at.markdown)
    assert "62 work items on 31 dates" in summary and "Nothing was written" in summary
    assert Path(settings.warehouse).read_bytes() == before
    assert Ledger(settings.ledger).list_runs() == []


def test_dry_run_shows_the_warehouses_cost_estimate_and_warns_over_the_guard(app, monkeypatch):
    # DuckDB has nothing to pay; a warehouse that can dry-run (BigQuery) answers at the boundary.
    import backfill.cost

    estimate = backfill.cost.CostEstimate(
        bytes_processed=3 * 1024**4,
        statements=5,
        largest=2 * 1024**4,
        guard=50 * 1024**3,
        warehouse="BigQuery project p",
    )
    monkeypatch.setattr(backfill.cost, "backfill_estimate", lambda warehouse, settings, request: estimate)
    at = open_page(app)
    at.segmented_control(key="backfill_source").set_value("typed").run()
    at.text_input(key="backfill_typed").input("2021-12-07").run()
    at.button(key="backfill_dry_run").click().run()
    assert not at.exception
    (warning,) = [element.value for element in at.warning if "BigQuery estimate" in element.value]
    assert "3.0 TiB processed by 5 statements" in warning and "would be refused" in warning


@pytest.mark.slow
def test_launch_follows_the_run_to_success_and_every_page_then_shows_december_complete(app, settings):
    at = open_page(app)  # Overview ran first: its December figures are cached below 100%
    launch_clicked(at)
    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    assert run.params["dates"] == ["2021-12-07", "2021-12-09"]
    assert run.created_by == LOCAL_USER
    assert at.session_state["backfill_run_id"] == run.run_id
    assert at.query_params["run"] == run.run_id
    assert f"Launched run {run.run_id}" in texts(at.success)

    assert follow_to_the_end(at, ledger, run.run_id) == "succeeded"
    # The recipe's gaps, each date's gap stages only: predictions of Dec 7; MLFS and predictions of Dec 9.
    assert progress_text(at).startswith("3 of 3 work items finished: 3 done")
    assert any("succeeded" in md.value for md in at.markdown)  # the status badge
    assert "backfill_cancel" not in [button.key for button in at.button]  # nothing left to cancel
    assert ledger.get_run(run.run_id).pid != os.getpid()  # the worker ran in its own process

    at.switch_page("pages/overview.py").run()
    assert not [table for table in at.table if "Gap dates" in table.value.columns], "no month has a gap left"
    (monthly, _) = [df.value for df in at.dataframe if "Note" in df.value.columns]  # predictions first
    predictions = monthly.set_index("Period")
    assert predictions.loc["2021-12", "Coverage %"] == 100.0
    assert predictions.loc["2021-12", "Status"] == "ok"
    at.query_params["date"] = "2021-12-09"
    at.switch_page("pages/coverage.py").run()
    assert "Predictions ok: 100.0%, expected 100.0%" in texts(at.caption)
    assert "Every player of Thu 2021-12-09 has a row in every stage (MLFS, Predictions)." in texts(at.success)


def _runs_in_ledger(settings: Settings) -> list[tuple[str, str | None]]:
    """(run id, launch key) of every recorded run, read with SQL of the test's own."""
    with sqlite3.connect(settings.ledger) as connection:
        return connection.execute("SELECT run_id, launch_key FROM runs").fetchall()


def test_right_after_a_launch_your_run_is_not_held_against_you_and_launch_is_disabled_with_why(app, settings):
    at = open_page(app)
    launch_clicked(at)
    ((run_id, key),) = _runs_in_ledger(settings)
    assert key  # the click's idempotency key is recorded with the run
    assert f"Launched run {run_id}" in texts(at.success)
    assert "held by" not in texts(at.warning)
    button = at.button(key="backfill_launch")
    assert button.disabled and f"Launched already: run {run_id}" in button.help
    at.run()  # the page polled again: still one run, still nothing held against you
    assert _runs_in_ledger(settings) == [(run_id, key)]
    assert "Nothing launched" not in texts(at.error) and "held by" not in texts(at.warning)
    assert follow_to_the_end(at, Ledger(settings.ledger), run_id) == "succeeded"


def test_a_repeated_launch_key_is_refused_by_the_backend_naming_the_first_run(settings, monkeypatch):
    spawned = []
    monkeypatch.setattr(launch, "spawn_worker", lambda settings, run_id: spawned.append(run_id))
    request = BackfillRequest.build(settings, dates=[DEC_7])
    first = submit(settings, request, LOCAL_USER, launch_key="click-1")
    with pytest.raises(AlreadyLaunched, match=f"it is run {first}"):
        submit(settings, request, LOCAL_USER, launch_key="click-1")
    assert _runs_in_ledger(settings) == [(first, "click-1")] and spawned == [first]


def _reversed_range(at):
    at.segmented_control(key="backfill_source").set_value("range").run()
    at.date_input(key="backfill_start").set_value(DEC_31)
    at.date_input(key="backfill_end").set_value(DEC_1)


def _too_long_range(at):
    at.segmented_control(key="backfill_source").set_value("range").run()
    at.date_input(key="backfill_start").set_value(dt.date(2020, 1, 1))
    at.date_input(key="backfill_end").set_value(DEC_31)


def _typed(text):
    def type_in(at):
        at.segmented_control(key="backfill_source").set_value("typed").run()
        at.text_input(key="backfill_typed").input(text)

    return type_in


def _gate(value):
    return lambda at: at.number_input(key="backfill_gate").set_value(value)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_reversed_range, "Range is reversed: start 2021-12-31 is after end 2021-12-01"),
        (_too_long_range, "Range of 731 days is over the maximum of 400 days"),
        (_typed("2021-12-07, 2031-01-01"), "Date 2031-01-01 is in the future"),
        (_typed("yesterday"), "Date 'yesterday' is not a date (expected YYYY-MM-DD)"),
        (_gate(150.0), "Minimum MLFS coverage must be between 0 and 100, got 150.0"),
        (_gate(-1.0), "Minimum MLFS coverage must be between 0 and 100, got -1.0"),
        (lambda at: at.pills(key="backfill_stages").set_value([]), "No stage given"),
        (lambda at: at.number_input(key="backfill_max_attempts").set_value(0), "Max attempts must be 1"),
        (
            lambda at: at.text_input(key="backfill_retry_delays").input("a, b"),
            "Retry delays 'a, b' are not numbers",
        ),
        (lambda at: at.number_input(key="backfill_batch_size").set_value(0), "Batch size must be 1 or more"),
    ],
)
def test_bad_input_is_named_beside_its_control_and_nothing_is_launched(app, settings, change, message):
    before = Path(settings.warehouse).read_bytes()
    at = open_page(app)
    change(at)
    at.run()
    assert not at.exception
    (error,) = at.error
    assert error.value.startswith(message) and "\n" not in error.value
    assert at.button(key="backfill_launch").disabled
    assert at.button(key="backfill_dry_run").disabled
    assert Ledger(settings.ledger).list_runs() == []
    assert Path(settings.warehouse).read_bytes() == before


def test_nothing_selected_on_coverage_says_so_and_launches_nothing(app, settings):
    at = open_page(app)
    at.segmented_control(key="backfill_source").set_value("selection").run()
    assert "Nothing is selected on the Coverage page yet" in texts(at.info)
    assert at.button(key="backfill_launch").disabled
    assert Ledger(settings.ledger).list_runs() == []


def test_viewer_sees_operator_controls_disabled_and_the_backend_refuses(app, settings, monkeypatch):
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    app.user = {"is_logged_in": True, "email": VIEWER}
    assert f"Signed in as {VIEWER} (viewer)" in sidebar_text(app)
    at = app.switch_page(BACKFILL_PAGE).run()
    assert at.button(key="backfill_launch").disabled
    assert at.checkbox(key="backfill_skip_gate").disabled
    assert f"{VIEWER} is not an operator" in texts(at.info)
    assert not at.button(key="backfill_dry_run").disabled  # previewing writes nothing: open to all
    guarded = settings.replace(operators=(OPERATOR,))
    assert refused_launch(guarded, VIEWER).startswith(
        f"{VIEWER} may not launch backfills: only operators may"
    )
    assert Ledger(settings.ledger).list_runs() == []


@pytest.mark.slow
def test_signed_in_operator_launches_and_the_run_records_their_email(app, settings, monkeypatch):
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    app.user = {"is_logged_in": True, "email": OPERATOR}
    assert f"Signed in as {OPERATOR} (operator)" in sidebar_text(app)
    at = app.switch_page(BACKFILL_PAGE).run()
    at.checkbox(key="backfill_skip_gate").check().run()
    at.pills(key="backfill_stages").set_value(["predictions"]).run()
    launch_clicked(at)
    ledger = Ledger(settings.ledger)
    (run,) = ledger.list_runs()
    assert run.created_by == OPERATOR and run.params["skip_gates"]
    assert ledger.actions()[0]["who"] == OPERATOR
    # With the gate skipped, Dec 9's predictions run on an MLFS that still misses players, so
    # verification finds that date short for want of its upstream: the run ends failed, Dec 7 done.
    assert follow_to_the_end(at, ledger, run.run_id) == "failed"
    outcomes = {item["game_date"]: (item["status"], item["error_class"]) for item in ledger.items(run.run_id)}
    assert outcomes == {"2021-12-07": ("done", None), "2021-12-09": ("failed", "upstream")}


def test_operators_without_sign_in_mean_viewing_only(app, settings, monkeypatch):
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    # AppTest's default user has no is_logged_in: as without an [auth] section.
    assert "operators are configured" in sidebar_text(app)
    at = app.switch_page(BACKFILL_PAGE).run()
    assert "cannot tell who you are" in texts(at.info)
    assert at.button(key="backfill_launch").disabled
    guarded = settings.replace(operators=(OPERATOR,))
    assert refused_launch(guarded, None).startswith("an anonymous user may not launch backfills")
    assert Ledger(settings.ledger).list_runs() == []


def test_signed_out_user_gets_a_log_in_button(app, monkeypatch):
    monkeypatch.setenv("BACKFILL_OPERATORS", OPERATOR)
    app.user = {"is_logged_in": False}
    assert app.run().sidebar.button(key="sidebar_log_in").label == "Log in"
    assert app.switch_page(BACKFILL_PAGE).run().button(key="backfill_launch").disabled


def test_run_link_shows_that_runs_progress(app, settings, read_only_demo):
    request = BackfillRequest.build(settings, dates=[DEC_7, DEC_9], stages=["predictions"])
    result = run_here(settings, request, LOCAL_USER, sleep=lambda seconds: None)
    app.query_params["run"] = result.run_id
    at = app.switch_page(BACKFILL_PAGE).run()
    assert not at.warning
    assert f"Run {result.run_id}" in [header.value for header in at.subheader]
    assert progress_text(at) == "2 of 2 work items finished: 1 done, 1 blocked"
    assert thin_date_gate_reason(thin_date_players(read_only_demo)) in texts(at.code)


def test_bad_run_link_warns_in_one_line(app):
    app.query_params["run"] = "no-such-run"
    at = app.switch_page(BACKFILL_PAGE).run()
    (warning,) = at.warning
    assert warning.value == "Ignored the link's run 'no-such-run': no such run in the ledger."
    assert "run" not in at.query_params


# -- who may act, and the form's checks -------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "operators", "who", "may_act", "summary"),
    [
        ({}, (), LOCAL_USER, True, "Single-user local mode"),
        ({"email": "test@example.com"}, (), LOCAL_USER, True, "Single-user local mode"),
        ({"is_logged_in": True, "email": OPERATOR}, (OPERATOR,), OPERATOR, True, "(operator)"),
        (
            {"is_logged_in": True, "email": "Alice@Example.com"},
            (OPERATOR,),
            "Alice@Example.com",
            True,
            "(operator)",
        ),
        ({"is_logged_in": True, "email": VIEWER}, (OPERATOR,), VIEWER, False, "(viewer)"),
        ({"is_logged_in": True, "email": VIEWER}, (), None, False, "Viewing only: no operators are listed"),
        ({"is_logged_in": False}, (), None, False, "Viewing only: no operators are listed"),
        ({"is_logged_in": False}, (OPERATOR,), None, False, "Not signed in"),
        ({"email": "test@example.com"}, (OPERATOR,), None, False, "sign-in is not"),
    ],
)
def test_identity_follows_sign_in_and_the_operator_list(user, operators, who, may_act, summary):
    identity = auth.identify(user, Settings(operators=operators), local=lambda: LOCAL_USER)
    assert (identity.who, identity.may_act) == (who, may_act)
    assert summary in identity.summary
    assert (identity.reason is None) == may_act
    assert identity.can_log_in == (user.get("is_logged_in") is False)


def test_form_check_names_the_field_at_fault_in_the_backends_words():
    settings = Settings()
    today = lambda: dt.date(2026, 11, 27)  # noqa: E731
    request, errors = runs.check_request(
        settings, {"dates": [DEC_7]}, stages=["mlfs", "features"], min_upstream_coverage_pct=101, today=today
    )
    assert request is None
    assert errors == {
        "stages": "unknown stage 'features' (choose from mlfs, predictions)",
        "min_upstream_coverage_pct": "minimum MLFS coverage must be between 0 and 100, got 101",
    }
    request, errors = runs.check_request(
        settings, {"start": DEC_1, "end": DEC_31}, stages=["predictions"], today=today
    )
    assert errors == {} and len(request.dates) == 31 and request.stages == ("predictions",)


def test_the_form_is_kept_in_the_url_and_a_link_opens_it_as_it_was(app):
    app.query_params["source"] = "typed"
    app.query_params["dates"] = "2021-12-07, 2021-12-09"
    at = open_page(app)
    assert not at.exception
    assert at.segmented_control(key="backfill_source").value == "typed"
    assert at.text_input(key="backfill_typed").value == "2021-12-07, 2021-12-09"
    assert not at.button(key="backfill_launch").disabled  # a whole request, from the link alone
    at.segmented_control(key="backfill_source").set_value("gaps").run()
    assert at.query_params["source"] == "gaps" and "dates" not in at.query_params
    assert at.query_params["scope"] == "2021-12"  # the newest month with gaps (the demo's December)
