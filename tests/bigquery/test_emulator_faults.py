"""Faults on the emulator: the MLFS gate, a replace failing half-way, bad SQL, transient errors.

Faults are injected at the client boundary (tests/bigquery/clients.py): the adapter, the retry
policy and the runner are the production ones, and the emulator does the SQL (SPEC 4.4, 5).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from google.api_core.exceptions import ServiceUnavailable

from backfill import coverage, stale
from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from backfill.runner import create_run, execute_run
from tests.bigquery.clients import Fault, FaultyClient, client_of, first_word
from tests.builtin import PIPELINE, PLAYERS_ON_A_DATE, replace_params, replace_script, thin_date_gate_reason

DEC_1, DEC_9, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 9), dt.date(2021, 12, 31)
LATER = dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def today() -> dt.date:
    return dt.date(2026, 11, 27)


def backfill(warehouse, settings, **request):
    run_request = BackfillRequest.build(settings, today=today, **request)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, run_request, "tester")
    result = execute_run(run_id, warehouse, settings, ledger, sleep=lambda seconds: None)
    return result, ledger.items(run_id)


def rows(warehouse, table: str, day: dt.date) -> pd.DataFrame:
    frame = warehouse.query(f"SELECT * FROM {{{table}}} WHERE game_date = @d", {"d": day})
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.fixture(scope="module")
def run_settings(emulator_settings, tmp_path_factory):
    return emulator_settings.replace(ledger=str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))


# -- the gate ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gated(emulator_demo, run_settings):
    """Predictions of 2021-12-09 asked for before its MLFS is backfilled."""
    return backfill(emulator_demo, run_settings, dates=[DEC_9], stages="predictions")


def test_gate_blocks_dec_9_predictions_before_mlfs_is_backfilled(gated, emulator_demo):
    result, items = gated
    assert (result.status, result.exit_code) == ("blocked", 1)
    ((item),) = items
    assert (item["stage"], item["status"], item["error_class"]) == ("predictions", "blocked", "blocked")
    players = int(emulator_demo.query(PLAYERS_ON_A_DATE, {"d": DEC_9})["n"].iloc[0])
    assert item["error_message"] == thin_date_gate_reason(players)
    # Measured, not written: one statement, and the date still has no predictions.
    assert result.statements == 1
    assert rows(emulator_demo, "player_prop_predictions", DEC_9).empty


# -- a replace that fails half-way ---------------------------------------------------------------


@pytest.mark.parametrize("before", [True, False], ids=["request-lost", "answer-lost"])
def test_a_replace_failing_after_its_delete_leaves_the_date_as_before(
    emulator_demo, emulator_settings, before
):
    day = dt.date(2021, 11, 20) if before else dt.date(2021, 11, 22)
    was = rows(emulator_demo, "ml_feature_store", day)
    params = replace_params("mlfs", [day], emulator_settings, LATER)
    fault = Fault(lambda sql: first_word(sql) == "INSERT", ServiceUnavailable("injected"), before=before)
    client = FaultyClient(emulator_demo.client, [fault])
    with client_of(emulator_demo, client), pytest.raises(ServiceUnavailable):
        emulator_demo.execute(replace_script("mlfs"), params)
    assert [first_word(sql) for sql in client.sent] == ["BEGIN", "DELETE", "INSERT", "ROLLBACK"]
    pd.testing.assert_frame_equal(rows(emulator_demo, "ml_feature_store", day), was)

    # Nothing was left open: the same replace now goes through and rewrites the whole date.
    emulator_demo.execute(replace_script("mlfs"), params)
    now = rows(emulator_demo, "ml_feature_store", day)
    assert len(now) == len(was) > 0
    assert (now["processed_at"] == pd.Timestamp(LATER)).all()


# -- bad SQL -------------------------------------------------------------------------------------


def test_bad_sql_is_permanent_and_fails_at_once(emulator_demo, run_settings):
    day = dt.date(2021, 11, 24)
    was = rows(emulator_demo, "ml_feature_store", day)
    client = FaultyClient(
        emulator_demo.client,
        rewrite=lambda sql: (
            sql.replace("INSERT INTO", "INSERT INTOO", 1) if first_word(sql) == "INSERT" else sql
        ),
    )
    with client_of(emulator_demo, client):
        result, items = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")

    ((item),) = items
    assert (result.status, item["status"], item["error_class"]) == ("failed", "failed", "permanent")
    assert item["attempts"] == 1
    assert item["error_message"].startswith("BadRequest: 400")
    # One attempt, no retry underneath either: the bad statement reached the server once.
    assert sum(first_word(sql) == "INSERT" for sql in client.sent) == 1
    pd.testing.assert_frame_equal(rows(emulator_demo, "ml_feature_store", day), was)


# -- transient faults ----------------------------------------------------------------------------


def _is_commit(sql: str) -> bool:
    return first_word(sql) == "COMMIT"


@pytest.fixture(scope="module")
def flaky(gated, emulator_demo, run_settings):
    """December backfilled (after the gate test) while the client fails now and then, before or
    after the job ran: the first measurement, the MLFS insert inside its transaction, a commit."""
    faults = [
        Fault(lambda sql: first_word(sql) == "WITH", ServiceUnavailable("injected: backend unavailable")),
        Fault(lambda sql: first_word(sql) == "INSERT", TimeoutError("injected: timed out"), before=False),
        Fault(_is_commit, ServiceUnavailable("injected: connection dropped after commit"), before=False),
    ]
    client = FaultyClient(emulator_demo.client, faults)
    with client_of(emulator_demo, client):
        result, items = backfill(emulator_demo, run_settings, start=DEC_1, end=DEC_31)
    return result, items, faults


def test_transient_faults_are_retried_and_the_run_completes(flaky):
    result, items, faults = flaky
    assert (result.status, result.exit_code) == ("succeeded", 0), result.message
    assert all(fault.fired for fault in faults)
    done = {(item["stage"], item["attempts"]) for item in items if item["status"] == "done"}
    # MLFS: the insert's lost answer, then the lost commit, then done; predictions at once.
    assert done == {("mlfs", 3), ("predictions", 1)}
    assert {item["status"] for item in items} <= {"done", "skipped"}  # skipped: days without games


def test_after_the_faults_december_is_complete_with_no_duplicate_and_no_lost_row(
    flaky, emulator_demo, run_settings
):
    monthly = coverage.monthly_coverage(emulator_demo, run_settings, DEC_1, DEC_31).set_index("stage")
    assert (monthly["expected_coverage_pct"] == 100.0).all()
    assert stale.stale_counts(emulator_demo, run_settings, DEC_1, DEC_31).empty
    # One MLFS row per player-game, one prediction per expected player-game and system.
    counts = emulator_demo.query(
        """SELECT
          (SELECT COUNT(*) FROM (SELECT DISTINCT game_date, player_lookup FROM {pgs}
            WHERE game_date BETWEEN @a AND @b)) AS player_games,
          (SELECT COUNT(*) FROM {mlfs} WHERE game_date BETWEEN @a AND @b) AS mlfs_rows,
          (SELECT COUNT(*) FROM {mlfs} WHERE game_date BETWEEN @a AND @b AND history_games >= @h) AS expected,
          (SELECT COUNT(*) FROM {pred} WHERE game_date BETWEEN @a AND @b) AS prediction_rows""",
        {"a": DEC_1, "b": DEC_31, "h": PIPELINE.stage("predictions").bootstrap_min_history},
    ).iloc[0]
    assert counts["mlfs_rows"] == counts["player_games"] > 3000
    assert counts["prediction_rows"] == counts["expected"] * len(
        PIPELINE.stage("predictions").processor.systems
    )
