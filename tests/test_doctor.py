"""``python -m backfill doctor`` on DuckDB: checks only, one line each, exit 1 when a table lacks a
required column (the BigQuery checks run against the emulator in tests/bigquery)."""

from __future__ import annotations

import os

import duckdb
import pytest

from backfill import demo
from backfill.cli.main import main
from backfill.config import Settings


@pytest.fixture
def demo_copy(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    demo.build_demo_file(str(path), Settings(warehouse=str(path)), seed=7)
    return path


def doctor(path, tmp_path, capsys) -> tuple[int, list[str]]:
    environ = {"BACKFILL_CONFIG": os.devnull, "BACKFILL_WAREHOUSE": str(path)}
    code = main(["doctor"], environ=environ)
    return code, capsys.readouterr().out.splitlines()


def test_the_demo_is_ready(demo_copy, tmp_path, capsys):
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 0
    assert lines[-1] == "ready: no check failed"
    assert sum(line.startswith("ok    table ") for line in lines) == 3


def test_a_missing_required_column_fails_and_an_optional_one_warns(demo_copy, tmp_path, capsys):
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("ALTER TABLE nba_predictions.player_prop_predictions DROP COLUMN model_version")
        connection.execute("ALTER TABLE nba_analytics.player_game_summary DROP COLUMN player_name")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  table player_prop_predictions: nba_predictions.player_prop_predictions lacks column "
        "model_version STRING (required): add it with ALTER TABLE nba_predictions.player_prop_predictions "
        "ADD COLUMN model_version STRING"
    ]
    assert any(
        line.startswith("warn  table player_game_summary:") and "player_name" in line for line in lines
    )
    assert lines[-1] == "1 check(s) failed"


def test_a_column_of_another_type_fails(demo_copy, tmp_path, capsys):
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("ALTER TABLE nba_precompute.ml_feature_store ALTER history_games TYPE VARCHAR")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert any("column history_games is STRING, expected INT64" in line for line in lines)
