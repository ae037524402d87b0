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


def doctor(path, tmp_path, capsys, pipeline=None) -> tuple[int, list[str]]:
    environ = {"BACKFILL_CONFIG": os.devnull, "BACKFILL_WAREHOUSE": str(path)}
    if pipeline is not None:
        environ["BACKFILL_PIPELINE"] = str(pipeline)
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
        connection.execute("ALTER TABLE nba_analytics.player_game_summary DROP COLUMN opponent_abbr")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  table player_prop_predictions: nba_predictions.player_prop_predictions lacks column "
        "model_version STRING (required): add it with ALTER TABLE nba_predictions.player_prop_predictions "
        "ADD COLUMN model_version STRING"
    ]
    assert any(
        line.startswith("warn  table player_game_summary:") and "opponent_abbr" in line for line in lines
    )
    assert lines[-1] == "1 check(s) failed"


def test_a_column_of_another_type_fails(demo_copy, tmp_path, capsys):
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("ALTER TABLE nba_precompute.ml_feature_store ALTER history_games TYPE VARCHAR")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert any("column history_games is STRING, expected INT64" in line for line in lines)


def test_a_column_the_pipeline_file_names_fails_when_missing(demo_copy, tmp_path, capsys):
    # player_name is the reference's name_column in the built-in pipeline: the drill-down reads it.
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("ALTER TABLE nba_analytics.player_game_summary DROP COLUMN player_name")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  table player_game_summary: nba_analytics.player_game_summary lacks column player_name "
        "STRING (the stage's name_column): add it with ALTER TABLE nba_analytics.player_game_summary "
        "ADD COLUMN player_name STRING"
    ]


TEAM_PIPELINE = """
[pipeline]
reference = "played"

[stages.played]
table = "nba_analytics.player_game_summary"

[stages.mlfs]
table = "nba_precompute.ml_feature_store"
upstream = "played"
processor = { kind = "sql", builtin = "mlfs" }

[stages.grades]
table = "nba_grading.prediction_grades"
upstream = "mlfs"
version_column = "grader_version"
current_version = "g1"
upstream_time_column = "mlfs_processed_at"
required_columns = ["game_date", "player_lookup", "grade"]
processor = { kind = "command", argv = ["python", "grade.py", "--dates", "{dates}"] }
"""


@pytest.fixture
def team_pipeline(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_text(TEAM_PIPELINE)
    return path


def test_every_stage_of_the_pipeline_file_is_checked_not_only_the_demos(
    demo_copy, team_pipeline, tmp_path, capsys
):
    code, lines = doctor(demo_copy, tmp_path, capsys, pipeline=team_pipeline)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL  table")] == [
        "FAIL  table prediction_grades: nba_grading.prediction_grades does not exist (stage grades): "
        "create it, or correct stages.grades.table in the pipeline file"
    ]
    # The demo's predictions table is in no stage of this file: nothing is said about it.
    assert not [line for line in lines if "player_prop_predictions" in line]


def test_a_stage_table_lacking_a_column_its_stage_names_fails(demo_copy, team_pipeline, tmp_path, capsys):
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("CREATE SCHEMA nba_grading")
        connection.execute(
            "CREATE TABLE nba_grading.prediction_grades (game_date DATE, player_lookup VARCHAR, "
            "grade DOUBLE, mlfs_processed_at TIMESTAMPTZ, processed_at TIMESTAMPTZ)"
        )
    code, lines = doctor(demo_copy, tmp_path, capsys, pipeline=team_pipeline)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  table prediction_grades: nba_grading.prediction_grades lacks column grader_version "
        "(the stage's version_column): add it, or name the table's own column in stages.grades of the "
        "pipeline file"
    ]
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute("ALTER TABLE nba_grading.prediction_grades ADD COLUMN grader_version VARCHAR")
    code, lines = doctor(demo_copy, tmp_path, capsys, pipeline=team_pipeline)
    assert (code, lines[-1]) == (0, "ready: no check failed")
    assert (
        "ok    table prediction_grades: nba_grading.prediction_grades has every column stage grades needs"
        in lines
    )


def test_a_required_column_the_builtin_statement_does_not_write_fails(demo_copy, tmp_path, capsys):
    with duckdb.connect(str(demo_copy)) as connection:
        connection.execute(
            "ALTER TABLE nba_precompute.ml_feature_store ADD COLUMN region VARCHAR DEFAULT 'us'"
        )
        connection.execute("ALTER TABLE nba_precompute.ml_feature_store ALTER region SET NOT NULL")
    code, lines = doctor(demo_copy, tmp_path, capsys)
    assert code == 1
    assert [line for line in lines if line.startswith("FAIL")] == [
        "FAIL  table ml_feature_store: nba_precompute.ml_feature_store has REQUIRED column region that "
        "the built-in mlfs statement does not write: a backfill would stop (make them NULLABLE, or use a "
        "command processor for this stage)"
    ]
