"""Bytes processed and billed per Coverage page load and per 31-date backfill (backfill.cost_report),
from dry runs answered by a fake client with fixed byte counts."""

from __future__ import annotations

import datetime as dt

import pytest

from backfill import cost_report
from backfill.config import Settings
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from tests.test_bigquery_adapter import PROJECT, FakeClient

MIB = 1024**2
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
SEASON = (dt.date(2021, 10, 19), dt.date(2022, 4, 10))


class SizedClient(FakeClient):
    """Dry runs report ``sizes[needle]`` bytes for a statement containing the needle, else 12345."""

    def __init__(self, sizes: dict[str, int] | None = None):
        super().__init__()
        self.sizes = sizes or {}

    def query(self, sql, **kwargs):
        job = super().query(sql, **kwargs)
        job.total_bytes_processed = next((n for needle, n in self.sizes.items() if needle in sql), 12345)
        return job


def bigquery(client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(Settings(warehouse=f"bigquery://{PROJECT}"), PROJECT, client=client)


def test_a_page_load_bills_ten_mb_per_table_of_each_of_its_statements(monkeypatch):
    client = SizedClient()
    warehouse = bigquery(client, monkeypatch)
    report = cost_report.page_load_report(warehouse, warehouse.settings, *SEASON)
    # What changed is partition metadata (no fingerprint of the rows), then the counts.
    assert [s.label for s in report.statements] == [
        "partition bounds",
        "partition times",
        "daily coverage",
        "monthly players",
    ]
    assert not [call for call in client.queries if "FARM_FINGERPRINT" in call["sql"]]
    # The bounds read one PARTITIONS view; the times one per dataset (analytics, precompute,
    # predictions); the counts read the three tables: each at the 10 MB minimum, 12345 B processed.
    assert [s.tables for s in report.statements] == [1, 3, 3, 3]
    assert (report.bytes_processed, report.bytes_billed) == (4 * 12345, 10 * 10 * MIB)
    assert all(call["job_config"].dry_run for call in client.queries) and len(client.queries) == 4
    assert report.text() == (
        "Coverage page load 2021-10-19 to 2022-04-10: 48.2 KiB processed, 100.0 MiB billed by 4 "
        "statements (dry runs on BigQuery project demo-project)"
    )


def test_a_31_date_backfill_bills_each_statement_of_its_scripts(monkeypatch):
    client = SizedClient()
    warehouse = bigquery(client, monkeypatch)
    report = cost_report.backfill_report(warehouse, warehouse.settings, dt.date(2021, 12, 1), now=NOW)
    # One batch: measure; MLFS DELETE (its table), INSERT (played -> MLFS); measure; predictions
    # DELETE, INSERT (played, MLFS -> predictions); measure. Transaction control is not a job's bytes.
    assert [(s.label, s.tables) for s in report.statements] == [
        ("measure", 3),
        ("replace", 1),
        ("replace", 2),
        ("measure", 3),
        ("replace", 1),
        ("replace", 3),
        ("measure", 3),
    ]
    assert report.bytes_processed == 7 * 12345
    assert report.bytes_billed == (3 + 1 + 2 + 3 + 1 + 3 + 3) * 10 * MIB


def test_a_statement_over_its_minimum_is_billed_its_bytes_rounded_up_to_the_mb(monkeypatch):
    client = SizedClient({"INSERT INTO": 25 * MIB + 1})
    warehouse = bigquery(client, monkeypatch)
    report = cost_report.backfill_report(warehouse, warehouse.settings, dt.date(2021, 12, 1), now=NOW)
    inserts = [s for s in report.statements if s.bytes_processed == 25 * MIB + 1]
    assert [s.bytes_billed for s in inserts] == [26 * MIB, 30 * MIB]  # 2 tables: 20 MB < 26; 3 tables: 30 MB
    assert (
        report.as_dict()["bytes_billed"]
        == report.bytes_billed
        == (3 * 3 + 1 + 1) * 10 * MIB + 26 * MIB + 30 * MIB
    )


@pytest.mark.parametrize(
    ("statement", "tables"),
    [
        ("SELECT 1", 0),
        ("SELECT * FROM `p.d.t` AS a JOIN `p.d.t` AS b USING (k)", 1),
        ("WITH x AS (SELECT k FROM `p.d.t`) SELECT * FROM x JOIN `p.e.u` USING (k)", 2),
        ("INSERT INTO `p.d.t` SELECT * FROM stale_keep_mlfs", 1),
    ],
)
def test_tables_referenced_counts_stored_tables_only(statement, tables):
    assert cost_report.tables_referenced(statement) == tables


def test_duckdb_has_no_bill():
    settings = Settings()
    warehouse = connect(settings, ":memory:")
    assert cost_report.page_load_report(warehouse, settings, *SEASON) is None
    assert cost_report.backfill_report(warehouse, settings, dt.date(2021, 12, 1), now=NOW) is None
    assert warehouse.statements_issued == 0
