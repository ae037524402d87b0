"""Every statement the CLI sends to BigQuery filters each stage table by its date column.

Tables with ``require_partition_filter = true`` refuse any other read. Every query job of every
client is recorded at the client's connection while the CLI's operations run in-process against the
emulator (the demo builder aside: it makes the tables), and each statement is checked with
sqlglot (tests/bigquery/partition_filters.py).
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout

import pytest
from google.cloud._http import JSONConnection

from backfill.cli.main import main
from backfill.warehouse.bigquery import EMULATOR_ENV
from tests.bigquery.conftest import PROJECT
from tests.bigquery.partition_filters import stage_tables_of, unfiltered_reads, violations


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    sent: list[str] = []
    real = JSONConnection.api_request

    def api_request(self, method, path, **kwargs):
        if method == "POST" and str(path).endswith("/jobs"):
            sent.append(kwargs["data"]["configuration"]["query"]["query"])
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(JSONConnection, "api_request", api_request)
    return sent


def test_the_checker_sees_an_unfiltered_read():
    tables = {"a.played": "game_date"}
    assert unfiltered_reads("SELECT MIN(game_date) FROM `p.a.played`", tables) == ["a.played"]
    assert unfiltered_reads("SELECT * FROM `p.a.played` WHERE game_date BETWEEN @s AND @e", tables) == []
    assert unfiltered_reads(
        "SELECT * FROM `p.a.played` AS x JOIN `p.a.played` AS y ON x.game_date = y.game_date "
        "WHERE x.game_date = @d",
        tables,
    ) == ["a.played"]


def test_every_cli_statement_filters_stage_tables_by_date(
    emulator_demo, emulator_settings, bigquery_emulator, statements, tmp_path, monkeypatch
):
    monkeypatch.setenv(EMULATOR_ENV, bigquery_emulator)
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": emulator_settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": emulator_settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": emulator_settings.predictions_dataset,
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CACHE_DIR": str(tmp_path / "cache"),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
    }
    december = ["--start", "2021-12-01", "--end", "2021-12-31"]
    operations = [
        ["coverage", "--by", "month", "--format", "json"],
        ["coverage", "--by", "date", *december],
        ["gaps", *december, "--output", str(tmp_path / "gaps.md")],
        ["stale", *december],
        ["run", *december, "--dry-run"],
        ["run", "--dates", "2021-12-07,2021-12-09"],
        ["stale", *december, "--delete", "--yes"],
        ["doctor"],
    ]
    for operation in operations:
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
            code = main(operation, environ=environ)
        assert code in (0, 1), (operation, err.getvalue())
    assert len(statements) > 10
    assert violations(statements, stage_tables_of(emulator_settings)) == []
