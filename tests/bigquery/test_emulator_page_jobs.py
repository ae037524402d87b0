"""The console's Coverage page on the emulator: a rerun on unchanged data sends no query job.

Every REST request of every client the console makes is recorded at the client's connection (the
outer boundary); a query job is a ``jobs.insert`` POST. On BigQuery whether data changed comes from
the tables' metadata (``tables.get``: no job, no bytes). bqemulator 1.4.0 never moves a table's
last-modified time on DML, so the adapter does not trust it there; this test only reruns on
unchanged data, so it lets the adapter use it (``EMULATOR_TRACKS_TABLE_TIMES``), as on BigQuery.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from google.cloud._http import JSONConnection
from streamlit.testing.v1 import AppTest

from backfill.cost_labels import user_hash
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from tests.bigquery.conftest import PROJECT

APP = Path(__file__).resolve().parents[2] / "app.py"


@pytest.fixture
def jobs_sent(monkeypatch) -> list[tuple[str, dict]]:
    """(SQL, labels) of every jobs.insert any client sends in the test."""
    sent: list[tuple[str, dict]] = []
    real = JSONConnection.api_request

    def api_request(self, method, path, **kwargs):
        if method == "POST" and str(path).endswith("/jobs"):
            configuration = kwargs["data"]["configuration"]
            sent.append((configuration["query"]["query"], configuration.get("labels", {})))
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(JSONConnection, "api_request", api_request)
    return sent


def test_a_coverage_page_rerun_on_unchanged_data_sends_no_query_job(
    emulator_demo, emulator_settings, bigquery_emulator, jobs_sent, tmp_path, monkeypatch
):
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv(EMULATOR_ENV, bigquery_emulator)
    monkeypatch.setattr(BigQueryWarehouse, "EMULATOR_TRACKS_TABLE_TIMES", True)
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": emulator_settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": emulator_settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": emulator_settings.predictions_dataset,
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CACHE_DIR": str(tmp_path / "cache"),
        "BACKFILL_USER": "analyst@example.com",  # single-user local mode: who looks
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    at.switch_page("pages/coverage.py").run()
    assert not at.exception, at.exception
    cold = list(jobs_sent)
    assert cold, "the first load reads the warehouse"
    assert all(labels.get("action") == "page" for _, labels in cold), cold  # cost by action
    who = user_hash("analyst@example.com")
    assert all(labels.get("user") == who for _, labels in cold), cold  # and by user, as a hash

    jobs_sent.clear()
    at.run()
    assert not at.exception, at.exception
    assert jobs_sent == []
