"""Transient or permanent: one case per exception type and per BigQuery error reason (SPEC 4.4).

The cases follow google-cloud-bigquery's own ``google/cloud/bigquery/retry.py``: a structured reason
decides first (a known transient reason is retried whatever the status, anything else is not),
then the exception class; where this project deliberately differs from the client, the case says why.
Job failures are built with the client's own ``_error_result_to_exception``, as ``QueryJob.result``
raises them.
"""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys

import duckdb
import pytest
import requests.exceptions
from google.api_core import exceptions as google
from google.api_core.exceptions import RetryError
from google.auth import exceptions as auth
from google.cloud.bigquery.job.base import _error_result_to_exception

from backfill.errors import BadInput, TryLater, WarehouseRefused
from backfill.faults import LATER, PERMANENT, TRANSIENT, classify, engines, explain, is_transient, later_hint
from backfill.warehouse.bigquery import BIGQUERY_ERRORS
from backfill.warehouse.duckdb import DUCKDB_ERRORS


def job_error(reason: str, message: str = "job failed") -> google.GoogleAPICallError:
    """The exception ``QueryJob.result()`` raises for a job whose errorResult has this reason."""
    return _error_result_to_exception({"reason": reason, "message": message})


def test_both_adapters_declare_their_errors_to_faults():
    assert BIGQUERY_ERRORS in engines() and DUCKDB_ERRORS in engines()


# -- exception types, when there is no structured reason -------------------------------------

TRANSIENT_TYPES = [
    TimeoutError("read timed out"),
    concurrent.futures.TimeoutError(),  # QueryJob.result's own wait timeout
    ConnectionError("peer went away"),
    ConnectionResetError("x"),
    ConnectionRefusedError("x"),
    BrokenPipeError("x"),
    google.ServiceUnavailable("503"),
    google.InternalServerError("500"),
    google.BadGateway("502"),
    google.TooManyRequests("429"),
    google.GatewayTimeout("504 from the front end"),
    google.DeadlineExceeded("504 deadline"),
    requests.exceptions.ConnectionError("connection aborted"),
    requests.exceptions.ChunkedEncodingError("response ended prematurely"),
    requests.exceptions.ReadTimeout("read timed out"),
    auth.TransportError("token endpoint unreachable"),
]


@pytest.mark.parametrize("error", TRANSIENT_TYPES, ids=lambda error: type(error).__qualname__)
def test_transient_exception_types(error):
    assert classify(error) == TRANSIENT


PERMANENT_TYPES = [
    google.BadRequest("Syntax error: Unexpected keyword"),
    google.NotFound("Not found: Table demo:nba_precompute.ml_feature_store"),
    google.Forbidden("Access Denied"),
    google.Unauthorized("no credentials"),
    google.Conflict("Already Exists: Dataset"),
    google.MethodNotAllowed("405"),
    # A subclass of requests' ConnectionError that the client never retries (_UNSTRUCTURED_NON_RETRYABLE_TYPES).
    requests.exceptions.SSLError("certificate verify failed: connection refused"),
    auth.DefaultCredentialsError("Your default credentials were not found."),
    auth.RefreshError("invalid_grant: reauth needed"),
    BadInput("range is reversed"),
    ValueError("bad value"),
    KeyError("missing"),
    ZeroDivisionError(),
]


@pytest.mark.parametrize("error", PERMANENT_TYPES, ids=lambda error: type(error).__qualname__)
def test_permanent_exception_types(error):
    assert classify(error) == PERMANENT


# -- reasons decide before classes -----------------------------------------------------------


@pytest.mark.parametrize("reason", sorted(BIGQUERY_ERRORS.transient_reasons))
@pytest.mark.parametrize("status", [google.BadRequest, google.Forbidden, google.InternalServerError])
def test_transient_reason_is_retried_whatever_the_status(reason, status):
    # BigQuery reports rate limits as 403 and some backend errors as 400.
    assert classify(status("failed", errors=[{"reason": reason, "message": "m"}])) == TRANSIENT


@pytest.mark.parametrize("reason", sorted(BIGQUERY_ERRORS.transient_reasons))
def test_job_that_failed_with_a_transient_reason_is_transient(reason):
    assert classify(job_error(reason)) == TRANSIENT


@pytest.mark.parametrize("reason", sorted(BIGQUERY_ERRORS.permanent_reasons))
@pytest.mark.parametrize("status", [google.BadRequest, google.Forbidden, google.ServiceUnavailable])
def test_permanent_reason_fails_at_once_even_on_a_retryable_status(reason, status):
    assert classify(status("refused", errors=[{"reason": reason, "message": "m"}])) == PERMANENT


@pytest.mark.parametrize(
    "reason", ["invalidQuery", "invalid", "notFound", "duplicate", "stopped", "someReasonNotYetInvented"]
)
def test_job_that_failed_with_any_other_reason_is_permanent(reason):
    # The client maps an unknown job reason to 500 InternalServerError; the reason still decides
    # (as _should_retry: a structured reason outside _RETRYABLE_REASONS is not retried).
    error = job_error(reason)
    assert classify(error) == PERMANENT
    if reason == "someReasonNotYetInvented":
        assert isinstance(error, google.InternalServerError)


@pytest.mark.parametrize(
    "reason, message",
    [
        ("stopped", "Job timed out after 10 min 0 sec"),
        ("stopped", "Job execution was cancelled: Job timed out after 6h"),
        ("timeout", "Query timed out. Try again later."),
    ],
)
def test_a_job_stopped_by_its_timeout_is_transient(reason, message):
    # job_timeout_ms ran out (the team's December failures were timeouts): a new job may succeed.
    assert classify(job_error(reason, message)) == TRANSIENT


@pytest.mark.parametrize(
    "reason, message",
    [
        ("stopped", "Job execution was cancelled: User requested cancellation"),
        ("timeout", "something else"),
        ("invalidQuery", "Job timed out"),  # only a stopped or timeout reason says the job timed out
    ],
)
def test_a_stopped_job_that_did_not_time_out_is_permanent(reason, message):
    assert classify(job_error(reason, message)) == PERMANENT


STREAMING_BUFFER = (
    "UPDATE or DELETE statement over table p.nba_precompute.ml_feature_store would affect rows in the "
    "streaming buffer, which is not supported"
)


def test_dml_on_rows_in_the_streaming_buffer_is_its_own_class_with_a_reason():
    error = job_error("invalidQuery", STREAMING_BUFFER)
    assert classify(error) == LATER
    assert not is_transient(error)  # the policy's minutes would not help: only the flush does
    assert "streaming buffer" in later_hint(error) and "rerun" in later_hint(error)
    assert classify(TryLater("wait")) == LATER
    assert later_hint(job_error("invalidQuery", "Syntax error")) is None


@pytest.mark.parametrize(
    "message",
    [
        "Could not serialize access to table demo-project:nba_precompute.ml_feature_store due to concurrent update",
        "Transaction is aborted due to concurrent update against table demo-project:nba_predictions.x",
    ],
)
def test_concurrent_update_is_transient_although_its_reason_is_invalid_query(message):
    # BigQuery reports it as 400 invalidQuery (see confluentinc/kafka-connect-bigquery#279) and says
    # to retry; as an API error and as a failed job.
    assert (
        classify(google.BadRequest(message, errors=[{"reason": "invalidQuery", "message": message}]))
        == TRANSIENT
    )
    assert classify(job_error("invalidQuery", message)) == TRANSIENT


def test_a_reason_of_a_retried_api_call_is_read_through_retry_error():
    # The client's DEFAULT_RETRY gave up: RetryError keeps the last error as its cause.
    gave_up = RetryError("Deadline of 600s exceeded", cause=google.ServiceUnavailable("503"))
    assert classify(gave_up) == TRANSIENT
    refused = google.BadRequest("x", errors=[{"reason": "bytesBilledLimitExceeded"}])
    assert classify(RetryError("gave up", cause=refused)) == PERMANENT


# -- what to change ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("bytesBilledLimitExceeded", "maximum_bytes_billed"),
        ("quotaExceeded", "quota"),
        ("billingNotEnabled", "enable"),
        ("accessDenied", "roles/bigquery.jobUser"),
    ],
)
def test_a_refusal_says_in_one_line_what_to_change(reason, words):
    error = job_error(reason, "Query exceeded limit for bytes billed: 1000. 10485760 or higher required.")
    hint = explain(error)
    assert words in hint and reason in hint and "\n" not in hint
    assert classify(WarehouseRefused(hint)) == PERMANENT


def test_errors_without_a_hint_are_not_explained():
    assert explain(google.BadRequest("Syntax error", errors=[{"reason": "invalidQuery"}])) is None
    assert explain(TimeoutError()) is None


# -- DuckDB --------------------------------------------------------------------------------------


def test_bad_sql_on_duckdb_is_permanent():
    with pytest.raises(duckdb.Error) as caught:
        duckdb.connect().execute("SELEC 1")
    assert classify(caught.value) == PERMANENT
    with pytest.raises(duckdb.Error) as caught:
        duckdb.connect().execute("SELECT * FROM no_such_table")
    assert classify(caught.value) == PERMANENT


def test_duckdb_lock_held_by_another_process_is_transient(tmp_path):
    path = tmp_path / "locked.duckdb"
    holder = duckdb.connect(str(path))
    holder.execute("CREATE TABLE t (a INT)")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import duckdb\ntry:\n duckdb.connect({str(path)!r})\nexcept Exception as e:\n print(type(e).__name__, e)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    holder.close()
    assert "lock" in result.stdout.lower()

    class IOException(Exception):
        __module__ = "_duckdb"

    assert classify(IOException(result.stdout)) == TRANSIENT


def test_duckdb_write_conflict_is_transient():
    first = duckdb.connect()
    first.execute("CREATE TABLE t (a INT PRIMARY KEY, b INT)")
    first.execute("INSERT INTO t VALUES (1, 1)")
    second = first.cursor()
    first.execute("BEGIN")
    second.execute("BEGIN")
    first.execute("UPDATE t SET b = 2 WHERE a = 1")
    with pytest.raises(duckdb.Error) as caught:
        second.execute("UPDATE t SET b = 3 WHERE a = 1")
    assert classify(caught.value) == TRANSIENT


# -- the fallback ----------------------------------------------------------------------------------


@pytest.mark.parametrize("word", ["timeout", "connection", "reset", "refused", "unavailable", "deadline"])
def test_team_keywords_are_the_fallback_for_unknown_errors(word):
    assert classify(RuntimeError(f"upstream said: {word.upper()} while reading")) == TRANSIENT


def test_the_cause_of_a_wrapping_error_is_classified():
    try:
        try:
            raise google.ServiceUnavailable("503")
        except google.ServiceUnavailable as inner:
            raise RuntimeError("job failed") from inner
    except RuntimeError as outer:
        assert is_transient(outer)


def test_a_known_permanent_type_wins_over_a_keyword_in_its_message():
    assert classify(google.BadRequest("Unrecognized name: connection_id")) == PERMANENT


def test_duckdb_users_load_no_google_library_to_classify():
    code = (
        "import sys, duckdb; from backfill.faults import classify; import backfill.warehouse.duckdb; "
        "classify(duckdb.IOException('Could not set lock on file')); "
        "print(sorted(m for m in sys.modules if m.startswith(('google', 'requests'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
