"""A December backfill through the runner on the emulator ends as it does on DuckDB (SPEC 4.4, 6)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from backfill import coverage, stale
from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from backfill.runner import RunResult, create_run, execute_run
from tests.bigquery.clients import recorded_jobs

DEC_1, DEC_7, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 7), dt.date(2021, 12, 31)


def backfill_december(warehouse, settings) -> tuple[RunResult, Ledger]:
    request = BackfillRequest.build(settings, start=DEC_1, end=DEC_31, today=lambda: dt.date(2026, 11, 27))
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, "tester")
    return execute_run(run_id, warehouse, settings, ledger, sleep=lambda seconds: None), ledger


@pytest.fixture(scope="module")
def run_settings(emulator_settings, tmp_path_factory):
    return emulator_settings.replace(ledger=str(tmp_path_factory.mktemp("ledger") / "ledger.sqlite"))


@pytest.fixture(scope="module")
def emulator_run(emulator_demo, run_settings):
    """The December backfill on the emulator, with the job resources the client sent."""
    with recorded_jobs(emulator_demo.client) as jobs:
        result, ledger = backfill_december(emulator_demo, run_settings)
    return result, ledger, jobs


@pytest.fixture(scope="module")
def duckdb_run(duckdb_demo, run_settings):
    return backfill_december(duckdb_demo, run_settings.replace(ledger=run_settings.ledger + ".duckdb"))


def test_december_backfill_succeeds_in_few_statements(emulator_run):
    result, ledger, _ = emulator_run
    assert (result.status, result.exit_code) == ("succeeded", 0), result.message
    # SPEC 5: a 31-date backfill issues at most 20 warehouse statements (on BigQuery, jobs) in all.
    assert result.statements <= 20
    items = pd.DataFrame(ledger.items(result.run_id)).set_index(["stage", "game_date"])
    assert items.loc[("predictions", str(DEC_7)), "coverage_before"] == 0.0
    assert items.loc[("predictions", str(DEC_7)), "coverage_after"] == 100.0


def test_december_is_complete_with_no_stale_rows(emulator_run, emulator_demo, run_settings):
    monthly = coverage.monthly_coverage(emulator_demo, run_settings, DEC_1, DEC_31).set_index("stage")
    assert (monthly["expected_coverage_pct"] == 100.0).all()
    assert (monthly["status"] == "ok").all()
    assert stale.stale_counts(emulator_demo, run_settings, DEC_1, DEC_31).empty


def test_backfill_records_the_same_items_as_on_duckdb(emulator_run, duckdb_run):
    columns = ["stage", "game_date", "status", "coverage_before", "coverage_after", "rows_written"]
    on_emulator = pd.DataFrame(emulator_run[1].items(emulator_run[0].run_id))[columns]
    on_duckdb = pd.DataFrame(duckdb_run[1].items(duckdb_run[0].run_id))[columns]
    pd.testing.assert_frame_equal(on_emulator, on_duckdb)
    # The same statements, counted as jobs: on the emulator each of the two replaces (one batch,
    # two stages) is 4 jobs in a session (BEGIN, DELETE, INSERT, COMMIT) where BigQuery runs 1.
    assert emulator_run[0].statements == duckdb_run[0].statements + 2 * 3


def test_coverage_after_the_backfill_is_the_same_as_duckdb(
    emulator_run, duckdb_run, emulator_demo, duckdb_demo
):
    settings = emulator_demo.settings
    first, last = coverage.data_bounds(duckdb_demo)
    expected = coverage.daily_coverage(duckdb_demo, settings, first, last)
    actual = coverage.daily_coverage(emulator_demo, settings, first, last)
    pd.testing.assert_frame_equal(actual, expected)


def test_the_statements_recorded_are_the_jobs_sent(emulator_run):
    result, ledger, jobs = emulator_run
    # What `runs show` prints is what the ledger holds: one statement per BigQuery job.
    assert ledger.get_run(result.run_id).statements == result.statements == len(jobs)


def test_every_job_carries_the_run_label_the_guard_and_the_timeout(emulator_run, run_settings):
    result, _, jobs = emulator_run
    for job in jobs:
        configuration = job["configuration"]
        assert configuration["labels"]["app"] == "nba-backfill"
        assert configuration["labels"]["backfill_run"] == result.run_id
        assert int(configuration["query"]["maximumBytesBilled"]) == run_settings.maximum_bytes_billed
        assert int(configuration["jobTimeoutMs"]) == run_settings.query_timeout_s * 1000
    # The replaces (4 jobs each in a session on the emulator) also name their stage.
    staged = [
        (job["configuration"]["labels"].get("stage"), job["configuration"]["query"]["query"]) for job in jobs
    ]
    replaced = [(stage, sql.split()[0]) for stage, sql in staged if stage]
    assert replaced == [
        (stage, word) for stage in ("mlfs", "predictions") for word in ("BEGIN", "DELETE", "INSERT", "COMMIT")
    ]
