"""Transient or permanent: one case per exception type and BigQuery reason (SPEC 4.4)."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys

import duckdb
import pytest
from google.api_core import exceptions as google

from backfill.errors import BadInput
from backfill.faults import PERMANENT, TRANSIENT, TRANSIENT_REASONS, classify, is_transient


@pytest.mark.parametrize(
    "error",
    [
        TimeoutError("read timed out"),
        concurrent.futures.TimeoutError(),
        ConnectionError("peer went away"),
        ConnectionResetError("x"),
        ConnectionRefusedError("x"),
        BrokenPipeError("x"),
        google.ServiceUnavailable("503"),
        google.DeadlineExceeded("504"),
        google.InternalServerError("500"),
        google.BadGateway("502"),
        google.GatewayTimeout("504"),
        google.TooManyRequests("429"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_transient_exception_types(error):
    assert classify(error) == TRANSIENT


@pytest.mark.parametrize("reason", sorted(TRANSIENT_REASONS))
def test_transient_bigquery_reasons_even_on_client_error_statuses(reason):
    # BigQuery reports rate limits as 403 Forbidden and backend errors as 400 with these reasons.
    for cls in (google.Forbidden, google.BadRequest):
        assert classify(cls("job failed", errors=[{"reason": reason, "message": "m"}])) == TRANSIENT


@pytest.mark.parametrize(
    "error",
    [
        google.BadRequest("Syntax error: Unexpected keyword", errors=[{"reason": "invalidQuery"}]),
        google.NotFound("Not found: Table demo:nba_precompute.ml_feature_store"),
        google.Forbidden("Access Denied", errors=[{"reason": "accessDenied"}]),
        google.Unauthorized("no credentials"),
        BadInput("range is reversed"),
        ValueError("bad value"),
        KeyError("missing"),
        ZeroDivisionError(),
    ],
    ids=lambda error: type(error).__name__,
)
def test_permanent_errors_fail_at_once(error):
    assert classify(error) == PERMANENT


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
