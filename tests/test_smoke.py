"""``python -m backfill smoke`` without a warehouse: its scratch names and its refusals (the steps
themselves run against the emulator in tests/bigquery/test_emulator_smoke.py)."""

from __future__ import annotations

import os

import pytest

from backfill.cli.main import main
from backfill.config import Settings
from backfill.errors import BadInput
from backfill.smoke import scratch_settings


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
