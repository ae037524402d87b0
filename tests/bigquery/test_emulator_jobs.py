"""Jobs on the emulator: one job per attempt, waits that re-attach, retried conflicts, refused caps.

Faults are injected at the client boundary (tests/bigquery/clients.py); the jobs that reach the wire
are counted from the client's own ``jobs.insert`` requests (``recorded_jobs``).
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pandas as pd
import pytest
import requests.exceptions
from google.api_core.exceptions import BadRequest, ServiceUnavailable

from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from backfill.runner import create_run, execute_run
from tests.bigquery.clients import Fault, FaultyClient, PollFault, client_of, first_word, recorded_jobs
from tests.bigquery_http import HttpFaults, InsertFault
from tests.builtin import replace_params, replace_script

LATER = dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


def today() -> dt.date:
    return dt.date(2026, 11, 27)


@pytest.fixture(scope="module")
def run_settings(emulator_settings, tmp_path_factory):
    return emulator_settings.replace(ledger=str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))


def backfill(warehouse, settings, **request):
    run_request = BackfillRequest.build(settings, today=today, **request)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, run_request, "tester")
    result = execute_run(run_id, warehouse, settings, ledger, sleep=lambda seconds: None)
    return run_id, result, ledger.items(run_id)


def rows(warehouse, table: str, day: dt.date) -> pd.DataFrame:
    frame = warehouse.query(f"SELECT * FROM {{{table}}} WHERE game_date = @d", {"d": day})
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


@pytest.mark.parametrize(
    "error",
    [
        ServiceUnavailable("injected: poll dropped"),
        requests.exceptions.ChunkedEncodingError("injected: response ended prematurely"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_failed_poll_re_attaches_and_never_sends_a_second_job(emulator_demo, emulator_settings, error):
    emulator_demo.sleep = lambda seconds: None
    day = dt.date(2021, 11, 16)
    params = replace_params("mlfs", [day], emulator_settings, LATER)
    poll = PollFault(lambda sql: first_word(sql) == "INSERT", error)
    client = FaultyClient(emulator_demo.client, poll_faults=[poll])
    with client_of(emulator_demo, client), recorded_jobs(emulator_demo.client) as jobs:
        emulator_demo.execute(replace_script("mlfs"), params)

    assert poll.fired
    # One job per statement of the script, the INSERT included: waiting again is not sending again.
    assert [first_word(sql) for sql in client.sent] == ["BEGIN", "DELETE", "INSERT", "COMMIT"]
    assert len(jobs) == 4
    ids = [job["jobReference"]["jobId"] for job in jobs]
    assert len(set(ids)) == 4 and all(job_id.startswith("backfill_") for job_id in ids)
    assert client.reattached == [ids[2]]
    written = rows(emulator_demo, "ml_feature_store", day)
    assert len(written) > 0 and (written["processed_at"] == pd.Timestamp(LATER)).all()


def test_a_concurrent_update_on_a_replace_is_retried_and_the_run_completes(emulator_demo, run_settings):
    day = dt.date(2021, 11, 18)
    conflict = BadRequest(
        "Could not serialize access to table demo-project:nba_precompute.ml_feature_store due to concurrent update",
        errors=[
            {"reason": "invalidQuery", "message": "Could not serialize access ... due to concurrent update"}
        ],
    )
    fault = Fault(lambda sql: first_word(sql) == "DELETE", conflict)
    client = FaultyClient(emulator_demo.client, [fault])
    with client_of(emulator_demo, client), recorded_jobs(emulator_demo.client) as jobs:
        run_id, result, items = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")

    assert fault.fired
    assert (result.status, result.exit_code) == ("succeeded", 0), result.message
    ((item),) = items
    assert (item["status"], item["attempts"]) == ("done", 2)
    # Every job of the run is labelled with it and has an id of its own, prefixed with the run.
    prefix = "backfill_" + "".join(ch if ch.isalnum() else "_" for ch in run_id.lower()) + "_"
    ids = [job["jobReference"]["jobId"] for job in jobs]
    assert ids and len(set(ids)) == len(ids)
    assert all(job_id.startswith(prefix) for job_id in ids), (prefix, ids)


def test_the_bytes_billed_cap_fails_at_once_with_what_to_change(emulator_demo, run_settings):
    day = dt.date(2021, 11, 19)
    was = rows(emulator_demo, "ml_feature_store", day)
    capped = BadRequest(
        "Query exceeded limit for bytes billed: 1000. 10485760 or higher required.",
        errors=[{"reason": "bytesBilledLimitExceeded", "message": "Query exceeded limit for bytes billed"}],
    )
    fault = Fault(lambda sql: first_word(sql) == "INSERT", capped)
    client = FaultyClient(emulator_demo.client, [fault])
    with client_of(emulator_demo, client):
        _, result, items = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")

    ((item),) = items
    assert (result.status, item["status"], item["error_class"], item["attempts"]) == (
        "failed",
        "failed",
        "permanent",
        1,
    )
    assert item["error_message"].startswith("WarehouseRefused: the query would bill more bytes than the cap")
    assert "maximum_bytes_billed" in item["error_message"]
    assert sum(first_word(sql) == "INSERT" for sql in client.sent) == 1
    pd.testing.assert_frame_equal(rows(emulator_demo, "ml_feature_store", day), was)


def test_jobs_run_in_the_datasets_own_location(emulator_demo):
    # Nothing configured: the location is read from the analytics dataset's metadata.
    assert emulator_demo.settings.bigquery_location == ""
    dataset = emulator_demo.client.get_dataset(
        f"{emulator_demo.project}.{emulator_demo.settings.analytics_dataset}"
    )
    assert dataset.location and emulator_demo.location == dataset.location


# -- faults at the HTTP connection (tests/bigquery_http.py) ----------------------------------------


@contextlib.contextmanager
def http_faults(warehouse, *faults: InsertFault):
    """The warehouse's client sends its requests through :class:`HttpFaults` for the block."""
    client = warehouse.client
    real = client._http
    wrapper = HttpFaults(real, list(faults))
    client._http_internal = wrapper
    try:
        yield wrapper
    finally:
        client._http_internal = real


def _is_insert(sql: str) -> bool:
    return first_word(sql) == "INSERT"


def test_a_lost_insert_answer_then_409_re_attaches_and_the_backfill_completes(emulator_demo, run_settings):
    # The session form (one job per statement): the INSERT's jobs.insert reaches the emulator, its
    # answer is lost; the client retries the same job id and is answered 409, as BigQuery does.
    emulator_demo.sleep = lambda seconds: None
    day = dt.date(2021, 12, 7)
    lost = InsertFault(_is_insert, lose_answer=True)
    with http_faults(emulator_demo, lost) as wire:
        run_id, result, items = backfill(emulator_demo, run_settings, dates=[day], stages="predictions")

    assert lost.fired
    assert (result.status, result.exit_code) == ("succeeded", 0), result.message
    ((item),) = items
    assert (item["status"], item["attempts"]) == ("done", 1)
    inserted = wire.inserted_sql()
    # The INSERT job was posted twice under one id (the retry met it) and never under a second id.
    repeated = {job for job in inserted if inserted.count(job) > 1}
    assert len(repeated) == 1 and inserted.count(next(iter(repeated))) == 2
    # Every player of the date has exactly one prediction per system, as an independent query counts.
    counts = emulator_demo.query(
        "SELECT (SELECT COUNT(*) FROM {predictions} WHERE game_date = @d) AS n, "
        "(SELECT COUNT(*) FROM (SELECT DISTINCT game_date, player_lookup, system_id FROM {predictions} "
        "WHERE game_date = @d)) AS distinct_keys, "
        "(SELECT COUNT(DISTINCT player_lookup) FROM {played} WHERE game_date = @d) AS played",
        {"d": day},
    )
    n, distinct_keys, played = counts.iloc[0]
    assert n == distinct_keys > 0 and played > 0
    assert item["coverage_after"] == 100.0


def test_a_job_stopped_by_its_timeout_on_the_first_attempt_is_retried_and_the_run_completes(
    emulator_demo, run_settings
):
    day = dt.date(2021, 11, 22)
    stopped = InsertFault(
        _is_insert, stand_in={"errorResult": {"reason": "stopped", "message": "Job timed out after 10 min"}}
    )
    with http_faults(emulator_demo, stopped):
        _, result, items = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")
    assert stopped.fired
    assert (result.status, result.exit_code) == ("succeeded", 0), result.message
    ((item),) = items
    assert (item["status"], item["attempts"]) == ("done", 2)


def test_a_streaming_buffer_refusal_fails_the_date_with_its_class_and_why(emulator_demo, run_settings):
    day = dt.date(2021, 11, 23)
    was = rows(emulator_demo, "ml_feature_store", day)
    message = (
        "UPDATE or DELETE statement over table demo-project:nba_precompute.ml_feature_store would affect "
        "rows in the streaming buffer, which is not supported"
    )
    refused = InsertFault(
        lambda sql: first_word(sql) == "DELETE",
        stand_in={"errorResult": {"reason": "invalidQuery", "message": message}},
    )
    with http_faults(emulator_demo, refused):
        _, result, items = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")
    ((item),) = items
    assert (result.exit_code, item["status"], item["error_class"], item["attempts"]) == (
        1,
        "failed",
        "later",
        1,
    )
    assert item["error_message"].startswith(
        "TryLater: BigQuery refuses DML on rows still in its streaming buffer"
    )
    pd.testing.assert_frame_equal(rows(emulator_demo, "ml_feature_store", day), was)


def test_a_run_records_the_bytes_billed_for_its_jobs(emulator_demo, run_settings):
    day = dt.date(2021, 11, 24)
    billing = HttpFaults(emulator_demo.client._http, billed_per_job=10 * 1024**2)
    client = emulator_demo.client
    real = client._http
    client._http_internal = billing
    try:
        run_id, result, _ = backfill(emulator_demo, run_settings, dates=[day], stages="mlfs")
    finally:
        client._http_internal = real
    assert result.exit_code == 0, result.message
    recorded = Ledger(run_settings.ledger).get_run(run_id).params["bytes_billed"]
    # Every finished job of the run as the server showed it, at 10 MB each.
    assert billing.billed and recorded == len(billing.billed) * 10 * 1024**2
