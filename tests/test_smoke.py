"""``python -m backfill smoke`` without a warehouse: its scratch names and its refusals (the steps
themselves run against the emulator in tests/bigquery/test_emulator_smoke.py)."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from backfill.cli.main import main
from backfill.config import Settings
from backfill.errors import BadInput
from backfill.smoke import run_smoke, scratch_settings
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from tests.test_bigquery_adapter import PROJECT, FakeClient


def test_scratch_datasets_are_the_configured_ones_with_the_suffix():
    settings = Settings(analytics_dataset="prod_analytics")
    scratch = scratch_settings(settings, "_scratch")
    assert scratch.datasets == {
        "analytics": "prod_analytics_scratch",
        "precompute": "nba_precompute_scratch",
        "predictions": "nba_predictions_scratch",
    }
    # The demo's tables are renamed with them: every stage reads and writes the scratch copies.
    assert scratch.dataset_name("nba_analytics") == "prod_analytics_scratch"


@pytest.mark.parametrize("suffix", ["", "-x", "_a.b", "_é", "_" + "x" * 200])
def test_a_suffix_that_does_not_make_plain_dataset_names_is_refused(suffix):
    with pytest.raises(BadInput):
        scratch_settings(Settings(), suffix)


def test_smoke_on_a_duckdb_warehouse_is_bad_input(tmp_path, capsys):
    environ = {"BACKFILL_CONFIG": os.devnull, "BACKFILL_WAREHOUSE": str(tmp_path / "w.duckdb")}
    assert main(["smoke", "--scratch-suffix", "_scratch"], environ=environ) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: smoke tries scratch datasets of a BigQuery project")
    assert not (tmp_path / "w.duckdb").exists()


def test_smoke_needs_a_suffix(capsys):
    assert main(["smoke"], environ={"BACKFILL_CONFIG": os.devnull}) == 2
    assert "--scratch-suffix" in capsys.readouterr().err


class ScratchFakeClient(FakeClient):
    """The fake BigQuery client, with datasets that carry labels and can be deleted."""

    def __init__(self):
        super().__init__()
        self.labels: dict[str, dict[str, str]] = {}
        self.deleted: list[str] = []

    def get_dataset(self, dataset_id, **kwargs):
        if dataset_id not in self.labels:
            raise NotFound(f"Not found: Dataset {dataset_id}")
        dataset = bigquery.Dataset(dataset_id)
        dataset.labels = dict(self.labels[dataset_id])
        return dataset

    def create_dataset(self, dataset, exists_ok=False, **kwargs):
        if isinstance(dataset, bigquery.Dataset) and not exists_ok:
            self.labels[f"{dataset.project}.{dataset.dataset_id}"] = dict(dataset.labels or {})
        return super().create_dataset(dataset, exists_ok=exists_ok, **kwargs)

    def delete_dataset(self, dataset_id, **kwargs):
        self.deleted.append(dataset_id)
        self.labels.pop(dataset_id, None)


def test_on_bigquery_each_stage_replace_is_one_multi_statement_job(monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    client = ScratchFakeClient()
    # The daily counts' columns, with no rows (the fake holds no data).
    counts = ["game_date", "players_total"] + [
        f"{stage}_{count}"
        for stage in ("mlfs", "predictions")
        for count in ("bootstrap", "covered", "expected_covered", "rows")
    ]
    client.answers = {"per_date AS": (pd.DataFrame({column: [] for column in counts}), [])}
    settings = scratch_settings(Settings(warehouse=f"bigquery://{PROJECT}"), "_scratch")
    warehouse = BigQueryWarehouse(settings, PROJECT, client=client)
    steps = {step.name: step for step in run_smoke(warehouse, settings)}
    assert steps["backfill 2021-12-07"].ok
    assert "(mlfs 1 job; predictions 1 job)" in steps["backfill 2021-12-07"].detail
    scripts = [sql for sql in client.sent if sql.startswith("BEGIN TRANSACTION;")]
    # Two season-long replaces building the demo, then the date's two: each whole, in one job.
    assert len(scripts) == 4 and all(sql.rstrip().endswith("COMMIT TRANSACTION;") for sql in scripts)
    # The fake holds no rows, so the coverage check fails; the datasets are dropped all the same.
    assert not steps["coverage 2021-12-07"].ok
    assert steps["drop scratch datasets"].ok
    assert sorted(client.deleted) == sorted(f"{PROJECT}.{name}" for name in set(settings.datasets.values()))
