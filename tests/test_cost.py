"""Cost estimates before work (backfill.cost): dry runs of exactly what the work would send."""

from __future__ import annotations

import datetime as dt

import pytest

from backfill import cost
from backfill.config import Settings
from backfill.request import BackfillRequest
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from tests.builtin import DAILY_SQL, replace_script
from tests.test_bigquery_adapter import PROJECT, FakeClient

TODAY = dt.date(2026, 11, 27)
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def december(settings: Settings, **options) -> BackfillRequest:
    return BackfillRequest.build(
        settings, start=dt.date(2021, 12, 1), end=dt.date(2021, 12, 31), today=lambda: TODAY, **options
    )


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def warehouse(client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(Settings(warehouse=f"bigquery://{PROJECT}"), PROJECT, client=client)


def test_duckdb_gives_no_estimate_and_sends_nothing():
    settings = Settings()
    warehouse = connect(settings, ":memory:")
    assert cost.backfill_estimate(warehouse, settings, december(settings)) is None
    assert cost.coverage_estimate(warehouse, settings, dt.date(2021, 12, 1), dt.date(2021, 12, 31)) is None
    assert warehouse.statements_issued == 0


def test_backfill_statements_are_what_the_runner_sends_per_batch():
    settings = Settings()
    statements = cost.backfill_statements(settings, december(settings), NOW)
    # One batch of 31 dates: measure, then for each stage replace and measure (5, as SPEC 5 counts).
    assert [template for template, _ in statements] == [
        DAILY_SQL,
        replace_script("mlfs"),
        DAILY_SQL,
        replace_script("predictions"),
        DAILY_SQL,
    ]
    smaller = cost.backfill_statements(settings, december(settings, batch_size=10, stages="mlfs"), NOW)
    assert len(smaller) == 4 * 3  # batches of 10, 10, 10 and 1 date
    assert smaller[1][1]["dates"] == [dt.date(2021, 12, day) for day in range(1, 11)]


def test_backfill_estimate_dry_runs_each_statement_of_the_backfill(warehouse, client):
    estimate = cost.backfill_estimate(warehouse, warehouse.settings, december(warehouse.settings), NOW)
    # The fake answers 12345 bytes a statement: 3 measurements, and a DELETE and INSERT per stage.
    assert len(client.queries) == 3 + 2 * 2
    assert all(call["job_config"].dry_run for call in client.queries)
    assert (estimate.bytes_processed, estimate.statements, estimate.largest) == (7 * 12345, 5, 2 * 12345)
    assert not estimate.over_guard
    assert estimate.text() == (
        "BigQuery estimate: 84.4 KiB processed by 5 statements; dry run on BigQuery project demo-project"
    )


def test_coverage_estimate_dry_runs_the_daily_and_monthly_counts(warehouse, client):
    start, end = dt.date(2021, 12, 1), dt.date(2021, 12, 31)
    assert cost.coverage_estimate(warehouse, warehouse.settings, start, end).statements == 2
    assert cost.coverage_estimate(warehouse, warehouse.settings, start, end, by="date").statements == 1
    assert len(client.queries) == 3 and all(call["job_config"].dry_run for call in client.queries)


def test_estimate_says_when_a_statement_is_over_the_bytes_billed_guard(client, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    warehouse = BigQueryWarehouse(Settings(maximum_bytes_billed=10_000), PROJECT, client=client)
    estimate = cost.coverage_estimate(
        warehouse, warehouse.settings, dt.date(2021, 12, 1), dt.date(2021, 12, 2)
    )
    assert estimate.over_guard
    assert estimate.text().endswith(
        "one of them (12.1 KiB) is over the maximum_bytes_billed guard of 9.8 KiB and would be refused"
    )
    unguarded = BigQueryWarehouse(Settings(maximum_bytes_billed=0), PROJECT, client=client)
    assert not cost.coverage_estimate(
        unguarded, unguarded.settings, dt.date(2021, 12, 1), dt.date(2021, 12, 2)
    ).over_guard


@pytest.mark.parametrize(
    ("count", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1_288_490_189, "1.2 GiB"), (5 * 1024**4, "5.0 TiB")],
)
def test_bytes_are_shown_in_binary_units(count, text):
    assert cost.human_bytes(count) == text


def test_an_estimate_that_cannot_be_made_is_a_note_not_an_error():
    from backfill.cost import estimate_note

    def refused():
        raise RuntimeError("dry runs are not\nallowed here")

    note = estimate_note(refused)
    assert note.text == "no BigQuery estimate (RuntimeError: dry runs are not allowed here)"
    assert not note.warn
    assert estimate_note(lambda: None) is None
