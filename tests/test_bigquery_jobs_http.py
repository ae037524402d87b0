"""BigQuery jobs through the official client and a fake BigQuery at the HTTP boundary.

Production's form of a replace (one script job that binds its parameters), which the emulator cannot
run, and BigQuery's own failure modes: an insert whose answer is lost and whose retry meets the job
(409), a job stopped by its timeout, a job failing while the client waits for it, a DML refused for
rows in the streaming buffer. The client's own retries, 409 recovery and polling run unchanged; only
its clock is fake, so its waits cost nothing.
"""

from __future__ import annotations

import datetime as dt

import pytest
from google.api_core.exceptions import InternalServerError
from google.api_core.retry import retry_base, retry_unary
from google.cloud.bigquery.job import query as query_job_module

from backfill.config import Settings
from backfill.errors import TryLater
from backfill.faults import LATER, TRANSIENT, classify
from backfill.retry import RetryPolicy
from backfill.warehouse.bigquery import EMULATOR_ENV, POLL_DEADLINE_S, BigQueryWarehouse
from tests.bigquery_http import FakeBigQuery, FakeClock, FakeJob, fake_client
from tests.builtin import replace_params, replace_script

PROJECT = "demo-project"
LATER_TIME = dt.datetime(2023, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
DAY = dt.date(2021, 12, 7)

TIMED_OUT = {"reason": "stopped", "message": "Job timed out after 10 min 0 sec"}
STREAMING = {
    "reason": "invalidQuery",
    "message": (
        f"UPDATE or DELETE statement over table {PROJECT}.nba_precompute.ml_feature_store would affect "
        "rows in the streaming buffer, which is not supported"
    ),
}


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The client's retry and polling loops read and sleep on this clock."""
    fake = FakeClock()
    monkeypatch.setattr(retry_unary, "time", fake)
    monkeypatch.setattr(retry_base, "time", fake)
    monkeypatch.setattr(query_job_module, "time", fake)
    return fake


def production(server: FakeBigQuery, monkeypatch, **settings) -> BigQueryWarehouse:
    """The adapter as on real BigQuery: scripts bind their parameters, one job per replace."""
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(
        Settings(warehouse=f"bigquery://{PROJECT}", bigquery_location="US", **settings),
        PROJECT,
        client=fake_client(server),
        sleep=lambda seconds: None,
    )


def replace(warehouse: BigQueryWarehouse) -> None:
    warehouse.execute(replace_script("mlfs"), replace_params("mlfs", [DAY], warehouse.settings, LATER_TIME))


def test_a_lost_insert_answer_then_409_re_attaches_to_the_script_job_and_never_sends_it_twice(
    monkeypatch, clock
):
    # BigQuery took the replace's job; its answer was lost. The client's retry sends the same id
    # again, BigQuery answers 409, and the client picks up the job that exists.
    server = FakeBigQuery(lose=lambda sql, number: "DELETE" in sql and number == 0)
    warehouse = production(server, monkeypatch)
    replace(warehouse)

    (job_id,) = server.jobs  # one job, the whole script
    assert "BEGIN TRANSACTION" in server.jobs[job_id]["configuration"]["query"]["query"]
    assert server.inserts == [job_id, job_id]  # the insert and its retry, under the same id
    assert job_id.startswith("backfill_")
    assert server.jobs[job_id]["status"]["state"] == "DONE"
    assert warehouse.statements_issued == 1


def test_a_lost_insert_answer_is_not_a_failed_attempt(monkeypatch, clock):
    server = FakeBigQuery(lose=lambda sql, number: "DELETE" in sql and number == 0)
    warehouse = production(server, monkeypatch)
    _, attempts = RetryPolicy(sleep=lambda seconds: None).call(lambda: replace(warehouse))
    assert attempts == 1 and len(server.jobs) == 1


def test_a_job_stopped_by_its_timeout_is_transient_and_retried_as_a_new_job(monkeypatch, clock):
    server = FakeBigQuery(plan=lambda sql, number: FakeJob(error=TIMED_OUT if number == 0 else None))
    warehouse = production(server, monkeypatch)
    seen: list[BaseException] = []
    _, attempts = RetryPolicy(sleep=lambda seconds: None).call(
        lambda: replace(warehouse), on_retry=lambda attempt, error, delay: seen.append(error)
    )
    assert attempts == 2
    (error,) = seen
    assert classify(error) == TRANSIENT and "timed out" in str(error)
    first, second = server.jobs.values()
    assert first["status"]["errorResult"] == TIMED_OUT and "errorResult" not in second["status"]


def test_the_job_timeout_and_the_clients_wait_are_one_rule(monkeypatch, clock):
    server = FakeBigQuery()
    warehouse = production(server, monkeypatch, query_timeout_s=120.0)
    replace(warehouse)
    (job,) = server.jobs.values()
    assert job["configuration"]["jobTimeoutMs"] == "120000"


def test_a_job_failing_while_waited_for_is_noticed_within_a_minute(monkeypatch, clock):
    # The job is running at the first look; then it fails, and getQueryResults answers its failure
    # as an HTTP 500 of the ambiguous reason backendError (as BigQuery does): the client's default
    # retry would ask again for 10 minutes.
    failure = {"reason": "backendError", "message": "Backend error: the job failed"}
    server = FakeBigQuery(
        plan=lambda sql, number: FakeJob(error=failure, running_polls=1, results_error=(500, failure))
    )
    warehouse = production(server, monkeypatch)
    started = clock.now
    with pytest.raises(InternalServerError) as caught:
        replace(warehouse)
    assert clock.now - started <= POLL_DEADLINE_S + 5.0
    assert classify(caught.value) == TRANSIENT  # a new job may well succeed
    (job_id,) = server.jobs
    assert server.inserts == [job_id]  # waiting again is not sending again


def test_a_refusal_for_rows_in_the_streaming_buffer_is_its_own_class_saying_why(monkeypatch, clock):
    server = FakeBigQuery(plan=lambda sql, number: FakeJob(error=STREAMING))
    warehouse = production(server, monkeypatch)
    with pytest.raises(TryLater) as caught:
        RetryPolicy(sleep=lambda seconds: None).call(lambda: replace(warehouse))
    assert classify(caught.value) == LATER
    message = str(caught.value)
    assert "streaming buffer" in message and "rerun these dates" in message and "\n" not in message
    assert len(server.jobs) == 1  # not retried within the policy's minutes: only time lifts it


def test_bytes_billed_add_up_each_finished_jobs_own_figure(monkeypatch, clock):
    server = FakeBigQuery(plan=lambda sql, number: FakeJob(error=TIMED_OUT if number == 0 else None))
    warehouse = production(server, monkeypatch)
    with pytest.raises(Exception):  # noqa: B017 - the first job is stopped: billed all the same
        replace(warehouse)
    replace(warehouse)
    # The fake bills 10 MB per finished job (its statistics), the stopped one included.
    assert warehouse.bytes_billed == 2 * 10 * 1024**2
