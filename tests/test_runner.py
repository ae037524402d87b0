"""The backfill engine on the demo warehouse: gate, atomic replace, batches, retries, ledger (SPEC 4.4, 4.5, 5)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from backfill import coverage, launch, stale
from backfill.access import NotAllowed
from backfill.errors import BackfillError, BadInput
from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from backfill.retry import RetryPolicy
from backfill.runner import create_run, execute_run
from tests.builtin import PLAYERS_ON_A_DATE, thin_date_gate_reason
from tests.faulty import FaultyWarehouse

ROOT = Path(__file__).resolve().parent.parent
DEC_1, DEC_7, DEC_9, DEC_15, DEC_31 = (dt.date(2021, 12, day) for day in (1, 7, 9, 15, 31))
TODAY = lambda: dt.date(2026, 11, 27)  # noqa: E731


def december(settings, **options) -> BackfillRequest:
    return BackfillRequest.build(settings, start=DEC_1, end=DEC_31, today=TODAY, **options)


def run(warehouse, settings, request, who="tester"):
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, who)
    return execute_run(run_id, warehouse, settings, ledger, sleep=lambda seconds: None), ledger


def monthly(warehouse, settings) -> pd.DataFrame:
    return coverage.monthly_coverage(warehouse, settings, DEC_1, DEC_31).set_index("stage")


def items(ledger, run_id) -> pd.DataFrame:
    return pd.DataFrame(ledger.items(run_id)).set_index(["stage", "game_date"])


def content(warehouse) -> dict[str, pd.DataFrame]:
    """Every row of December in both stages, timestamps left out, in a stable order."""
    mlfs = warehouse.query(
        "SELECT * EXCEPT (processed_at) FROM {mlfs} WHERE game_date BETWEEN @a AND @b",
        {"a": DEC_1, "b": DEC_31},
    )
    pred = warehouse.query(
        "SELECT * EXCEPT (feature_processed_at, created_at) FROM {pred} WHERE game_date BETWEEN @a AND @b",
        {"a": DEC_1, "b": DEC_31},
    )
    return {
        "mlfs": mlfs.sort_values(["game_date", "player_lookup"]).reset_index(drop=True),
        "pred": pred.sort_values(["game_date", "player_lookup", "system_id"]).reset_index(drop=True),
    }


def test_december_backfill_reaches_100_percent_with_no_stale_rows_in_few_statements(demo, settings):
    result, ledger = run(demo, settings, december(settings))
    assert (result.status, result.exit_code) == ("succeeded", 0)
    figures = monthly(demo, settings)
    assert figures.loc["mlfs", "expected_coverage_pct"] == 100.0
    assert figures.loc["predictions", "expected_coverage_pct"] == 100.0
    assert (figures["status"] == "ok").all()
    assert stale.stale_counts(demo, settings, DEC_1, DEC_31).empty
    # SPEC 5: a 31-date backfill issues at most 20 warehouse statements in all.
    assert result.statements <= 20
    assert ledger.get_run(result.run_id).statements == result.statements
    recorded = items(ledger, result.run_id)
    assert set(recorded["status"]) == {"done", "skipped"}  # Dec 24: no games
    assert recorded.loc[("predictions", "2021-12-07"), "coverage_before"] == 0.0
    assert recorded.loc[("predictions", "2021-12-07"), "coverage_after"] == 100.0
    assert recorded.loc[("predictions", "2021-12-07"), "rows_written"] > 0


def test_running_the_same_backfill_again_changes_nothing_but_timestamps(demo, settings):
    run(demo, settings, december(settings))
    first = content(demo)
    result, _ = run(demo, settings, december(settings))
    assert result.status == "succeeded"
    again = content(demo)
    for table in first:
        pd.testing.assert_frame_equal(first[table], again[table])


def test_blocked_date_is_not_a_failure(demo, settings):
    request = BackfillRequest.build(settings, dates=[DEC_9], stages="predictions", today=TODAY)
    result, ledger = run(demo, settings, request)
    item = ledger.items(result.run_id)[0]
    assert item["status"] == "blocked" and item["error_class"] == "blocked"
    players = int(demo.query(PLAYERS_ON_A_DATE, {"d": DEC_9})["n"].iloc[0])
    assert item["error_message"] == thin_date_gate_reason(players)
    assert item["attempts"] == 0
    assert (result.status, result.exit_code) == ("blocked", 1)
    assert "failed" not in result.counts
    # Nothing was written for the blocked date.
    assert monthly(demo, settings).loc["predictions", "expected_coverage_pct"] < 100.0


def test_skip_mlfs_check_lets_an_operator_run_predictions_below_the_gate(demo, settings):
    request = BackfillRequest.build(
        settings, dates=[DEC_9], stages="predictions", skip_gates=True, today=TODAY
    )
    result, ledger = run(demo, settings, request)
    (item,) = ledger.items(result.run_id)
    # Predictions were written for the players MLFS has; verification still finds the date short of
    # complete (MLFS misses players), so the item is not done: it failed for want of its upstream.
    assert item["rows_written"] > 0
    assert (item["status"], item["error_class"]) == ("failed", "upstream")
    assert item["error_message"].startswith("its upstream MLFS is partial on this date")
    assert item["coverage_after"] > item["coverage_before"]


def test_gate_threshold_is_configurable(demo, settings):
    request = BackfillRequest.build(
        settings, dates=[DEC_9], stages="predictions", min_upstream_coverage_pct=80, today=TODAY
    )
    result, ledger = run(demo, settings, request)
    (item,) = ledger.items(result.run_id)
    # MLFS covers more than 80% of Dec 9, so the date is not blocked: predictions ran (and, with MLFS
    # still short, verification finds the date incomplete).
    assert item["status"] != "blocked" and item["rows_written"] > 0


def test_mlfs_backfilled_in_the_same_run_opens_the_gate(demo, settings):
    request = BackfillRequest.build(settings, dates=[DEC_9], today=TODAY)
    result, ledger = run(demo, settings, request)
    assert result.status == "succeeded"
    assert {item["status"] for item in ledger.items(result.run_id)} == {"done"}


def test_permanent_error_on_one_date_leaves_the_others_complete_and_its_rows_intact(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse, poison={DEC_15})
    before = warehouse.query("SELECT COUNT(*) AS n FROM {mlfs} WHERE game_date = @d", {"d": DEC_15})[
        "n"
    ].iloc[0]
    result, ledger = run(warehouse, settings, december(settings))
    recorded = items(ledger, result.run_id)
    failed = recorded[recorded["status"] == "failed"]
    assert list(failed.index) == [("mlfs", "2021-12-15"), ("predictions", "2021-12-15")]
    assert set(failed["error_class"]) == {"permanent"}
    assert "PoisonedDate" in failed["error_message"].iloc[0]
    assert set(recorded.drop(failed.index)["status"]) == {"done", "skipped"}
    # The failed date keeps its previous rows; every other gap is filled.
    after = warehouse.query("SELECT COUNT(*) AS n FROM {mlfs} WHERE game_date = @d", {"d": DEC_15})["n"].iloc[
        0
    ]
    assert after == before
    daily = coverage.daily_coverage(warehouse, settings, DEC_1, DEC_31)
    others = daily[(daily["game_date"] != DEC_15) & (daily["status"] != "no_games")]
    assert (others["expected_coverage_pct"] == 100.0).all()
    assert (result.status, result.exit_code) == ("failed", 1)


def test_transient_errors_in_a_third_of_calls_still_complete_every_date_without_duplicates(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse, every=3)
    result, ledger = run(warehouse, settings, december(settings.replace(batch_size=4)))
    assert warehouse.injected >= 5
    assert result.status == "succeeded"
    warehouse.every = None  # check the outcome without faults
    assert monthly(warehouse, settings).loc["predictions", "expected_coverage_pct"] == 100.0
    counts = stale.stale_counts(warehouse, settings, DEC_1, DEC_31)
    assert counts.empty, counts  # no duplicate, no orphan, nothing outdated
    retried = [event for event in ledger.events(result.run_id, limit=500) if "retrying" in event["message"]]
    assert len(retried) >= 5
    assert max(item["attempts"] for item in ledger.items(result.run_id)) >= 2


def test_transient_failures_that_never_clear_are_recorded_as_transient_after_every_attempt(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse)
    request = BackfillRequest.build(settings, dates=[DEC_7], stages="mlfs", max_attempts=3, today=TODAY)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, "tester")
    sleeps = []
    warehouse.on_execute = lambda params: (_ for _ in ()).throw(TimeoutError("still timing out"))
    result = execute_run(run_id, warehouse, settings, ledger, sleep=sleeps.append)
    item = ledger.items(run_id)[0]
    assert (item["status"], item["error_class"], item["attempts"]) == ("failed", "transient", 3)
    assert len(sleeps) == 2
    assert result.exit_code == 1


def test_retries_wait_the_configured_delays_with_jitter_and_never_really_sleep():
    slept = []
    policy = RetryPolicy(max_attempts=4, delays=(30.0, 60.0, 120.0), sleep=slept.append)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 4:
            raise TimeoutError("timed out")
        return "done"

    assert policy.call(flaky) == ("done", 4)
    assert [30 <= slept[0] <= 33, 60 <= slept[1] <= 66, 120 <= slept[2] <= 132] == [True, True, True]


def test_a_permanent_error_is_not_retried():
    slept = []
    policy = RetryPolicy(sleep=slept.append)
    with pytest.raises(ValueError):
        policy.call(lambda: (_ for _ in ()).throw(ValueError("bad SQL")))
    assert slept == []


def test_a_second_run_is_refused_the_dates_another_run_holds(demo, settings):
    ledger = Ledger(settings.ledger)
    holder = create_run(ledger, demo, december(settings), "alice")
    ledger.start_run(holder)  # alive: this very process
    ledger.acquire_leases(holder, december(settings).items())
    second = BackfillRequest.build(settings, dates=[DEC_7], today=TODAY)
    result, _ = run(demo, settings, second, who="bob")
    assert result.status == "refused"
    assert f"held by run {holder} (started by alice)" in result.message
    assert result.exit_code == 1
    # The holder finishes, then the same request goes through.
    ledger.finish_run(holder, "succeeded")
    result, _ = run(demo, settings, second, who="bob")
    assert result.status == "succeeded"


def test_a_lease_of_a_dead_run_is_released_as_interrupted(demo, settings):
    ledger = Ledger(settings.ledger)
    crashed = create_run(ledger, demo, december(settings), "alice")
    # Another process claims the run, takes its leases and ends without finishing it.
    claim = (
        "import datetime as dt, sys; from backfill.ledger import Ledger\n"
        "ledger, run_id = Ledger(sys.argv[1]), sys.argv[2]; ledger.start_run(run_id)\n"
        "pairs = [(i['stage'], dt.date.fromisoformat(i['game_date'])) for i in ledger.items(run_id)]\n"
        "ledger.acquire_leases(run_id, pairs)"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", claim, settings.ledger, crashed], env=env, check=True, timeout=60)
    assert len(ledger.items(crashed)) == 62 and ledger.get_run(crashed).status == "running"
    result, _ = run(demo, settings, BackfillRequest.build(settings, dates=[DEC_7], today=TODAY))
    assert result.status == "succeeded"
    assert ledger.get_run(crashed).status == "interrupted"


def test_cancel_takes_effect_between_batches(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse)
    ledger = Ledger(settings.ledger)
    request = december(settings, batch_size=5)
    run_id = create_run(ledger, warehouse, request, "tester")
    warehouse.on_execute = lambda params: ledger.request_cancel(run_id)
    result = execute_run(run_id, warehouse, settings, ledger, sleep=lambda s: None)
    assert result.status == "cancelled"
    statuses = pd.Series([item["status"] for item in ledger.items(run_id)]).value_counts()
    assert statuses["done"] == 10  # the first batch of 5 dates, both stages, completed whole
    assert statuses["cancelled"] == 52


def test_rerun_failed_takes_only_the_unfinished_dates(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse, poison={DEC_15})
    result, ledger = run(warehouse, settings, december(settings))
    request = launch.rerun_request(ledger, result.run_id, settings.pipeline)
    assert request.dates == (DEC_15,) and request.stages == ("mlfs", "predictions")
    with pytest.raises(BadInput, match="no transient failures"):
        launch.rerun_request(ledger, result.run_id, settings.pipeline, only_transient=True)
    warehouse.poison.clear()
    rerun = launch.rerun(
        settings, result.run_id, "tester", detach=False, warehouse=warehouse, sleep=lambda s: None
    )
    assert rerun.status == "succeeded"
    assert ledger.get_run(rerun.run_id).parent_run_id == result.run_id


def test_rerun_only_transient_failures(settings):
    warehouse = FaultyWarehouse(settings, settings.warehouse, poison={DEC_15})
    ledger = Ledger(settings.ledger)
    request = BackfillRequest.build(
        settings, dates=[DEC_7, DEC_15], stages="mlfs", max_attempts=1, today=TODAY
    )
    run_id = create_run(ledger, warehouse, request, "tester")

    def time_out_dec_7(params):
        if DEC_7 in params.get("dates", []) and DEC_15 not in params["dates"]:
            raise TimeoutError("timed out")

    warehouse.on_execute = time_out_dec_7
    execute_run(run_id, warehouse, settings, ledger, sleep=lambda s: None)
    classes = {item["game_date"]: item["error_class"] for item in ledger.items(run_id)}
    assert classes == {"2021-12-07": "transient", "2021-12-15": "permanent"}
    assert launch.rerun_request(ledger, run_id, settings.pipeline, only_transient=True).dates == (DEC_7,)


def test_stale_rows_are_deleted_in_one_transaction_and_recorded(demo, settings):
    deleted = launch.delete_stale_rows(settings, DEC_1, DEC_31, "alice", warehouse=demo)
    assert set(deleted["category"]) == set(stale.CATEGORIES)
    assert stale.stale_counts(demo, settings, DEC_1, DEC_31).empty
    action = Ledger(settings.ledger).actions()[0]
    assert (action["who"], action["action"]) == ("alice", "delete_stale")
    assert action["details"]["rows_by_category"]["player_prop_predictions.duplicate"] == 5


def test_only_operators_may_act_when_operators_are_configured(demo, settings):
    guarded = settings.replace(operators=("alice@example.com",))
    with pytest.raises(NotAllowed, match="only operators"):
        launch.run_here(guarded, december(guarded), "bob@example.com", warehouse=demo)
    with pytest.raises(NotAllowed):
        launch.delete_stale_rows(guarded, DEC_1, DEC_31, "bob@example.com", warehouse=demo)
    assert Ledger(settings.ledger).list_runs() == []
    result = launch.run_here(
        guarded, december(guarded), "alice@example.com", warehouse=demo, sleep=lambda s: None
    )
    assert result.status == "succeeded"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "2021-12-31", "end": "2021-12-01"}, "reversed"),
        ({"start": "2021-01-01", "end": "2022-12-31"}, "over the maximum"),
        ({"dates": "2027-01-01"}, "in the future"),
        ({"dates": "2021-13-01"}, "not a date"),
        ({"dates": "2021-12-07", "stages": "mlfs,features"}, "unknown stage"),
        ({"dates": "2021-12-07", "min_upstream_coverage_pct": 120}, "between 0 and 100"),
        ({"dates": "2021-12-07", "retry_delays": "30,soon"}, "not numbers"),
        ({"dates": "2021-12-07", "max_attempts": 0}, "1 or more"),
        ({}, "no dates"),
    ],
)
def test_bad_requests_are_refused_with_one_line(settings, kwargs, message):
    with pytest.raises(BadInput, match=message) as caught:
        BackfillRequest.build(settings, today=TODAY, **kwargs)
    assert "\n" not in str(caught.value)


def test_request_survives_the_ledger_round_trip(settings):
    request = december(settings, skip_gates=True, retry_delays="1,2", batch_size=7)
    assert BackfillRequest.from_params(request.to_params()) == request


def test_demo_fixture_is_untouched_by_writing_tests(read_only_demo, demo, settings):
    # Guard: tests that write use private copies, so the shared demo file still shows the incident.
    run(demo, settings, december(settings))  # a write to this test's own copy ...
    figures = coverage.monthly_coverage(read_only_demo, settings, DEC_1, DEC_31).set_index("stage")
    assert figures.loc["predictions", "status"] == "missing"  # ... leaves the shared file as built


def test_a_run_is_claimed_by_one_process_only(demo, settings):
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, demo, december(settings), "alice")
    ledger.start_run(run_id)
    with pytest.raises(BackfillError, match="not starting it again"):
        ledger.start_run(run_id)
    with pytest.raises(BackfillError, match="still running"):
        launch.resume(settings, run_id, "bob", warehouse=demo)
