"""Adding a stage takes a change to the pipeline file only (SPEC 7.3): a four-stage pipeline written
in a temporary folder (the built-in stages and a grading stage of the team's own Python) runs through
the unchanged CLI, and coverage, gaps, stale rows and reruns all know the new stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[1]

GRADING = """
[stages.grading]
label = "Grades"
table = "grading_ops.prediction_grades"  # a dataset of its own: demo --pipeline creates it
upstream = "predictions"
bootstrap_min_history = 3
written_at_column = "graded_at"
duplicate_key = ["game_date", "player_lookup", "system_id"]
upstream_time_column = "prediction_created_at"
required_columns = ["game_date", "player_lookup", "system_id", "abs_error"]
columns = { game_date = "DATE", player_lookup = "STRING", system_id = "STRING", abs_error = "FLOAT64", prediction_created_at = "TIMESTAMP", graded_at = "TIMESTAMP" }
processor = { kind = "python", function = "grading:grade", batch_size = 7 }
"""

GRADE = '''
def grade(dates, context):
    """Grade each prediction of the dates against the points scored: replace the dates' grades."""
    context.warehouse.execute(
        "BEGIN TRANSACTION;"
        " DELETE FROM {grading} WHERE game_date IN UNNEST(@dates);"
        " INSERT INTO {grading} SELECT p.game_date, p.player_lookup, p.system_id,"
        "  ABS(p.predicted_points - s.points), p.created_at, @now"
        "  FROM {predictions} AS p JOIN {played} AS s"
        "  ON s.game_date = p.game_date AND s.player_lookup = p.player_lookup"
        "  WHERE p.game_date IN UNNEST(@dates);"
        " COMMIT TRANSACTION;",
        {"dates": dates, "now": context.now},
    )
'''


def cli(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill", *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_fourth_stage_is_one_more_section_in_the_file(settings, tmp_path):
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text((ROOT / "backfill" / "pipelines" / "demo.toml").read_text() + GRADING)
    (tmp_path / "grading.py").write_text(textwrap.dedent(GRADE))
    env = {name: value for name, value in os.environ.items() if name != "BACKFILL_PIPELINE"} | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_RETRY_DELAYS": "0,0,0",
        "BACKFILL_PIPELINE": str(pipeline),
    }
    assert cli(env, "demo", "--seed", "7").returncode == 0  # creates the declared grades table, empty

    before = json.loads(
        cli(env, "coverage", "--start", "2021-12-01", "--end", "2021-12-31", "--format", "json").stdout
    )
    assert [row["stage"] for row in before] == ["mlfs", "predictions", "grading"]
    assert before[2]["status"] == "missing" and before[2]["players_covered"] == 0

    done = cli(env, "run", "--start", "2021-12-01", "--end", "2021-12-31")
    assert done.returncode == 0, done.stdout + done.stderr
    after = json.loads(
        cli(env, "coverage", "--start", "2021-12-01", "--end", "2021-12-31", "--format", "json").stdout
    )
    assert {row["stage"]: (row["expected_coverage_pct"], row["status"]) for row in after} == {
        "mlfs": (100.0, "ok"),
        "predictions": (100.0, "ok"),
        "grading": (100.0, "ok"),
    }
    with duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True) as database:
        grades, predictions = database.execute(
            "SELECT (SELECT COUNT(*) FROM grading_ops.prediction_grades),"
            " (SELECT COUNT(*) FROM nba_predictions.player_prop_predictions"
            "  WHERE game_date BETWEEN DATE '2021-12-01' AND DATE '2021-12-31')"
        ).fetchone()
    assert grades == predictions > 0  # one grade per prediction of December
    assert "No stale rows" in cli(env, "stale", "--start", "2021-12-01", "--end", "2021-12-31").stdout

    # The new stage is a stage like any other: its stale rows are found, and --stages takes it.
    with duckdb.connect(str(tmp_path / "w.duckdb")) as database:
        database.execute(
            "INSERT INTO grading_ops.prediction_grades SELECT * FROM grading_ops.prediction_grades"
            " WHERE game_date = DATE '2021-12-10' ORDER BY player_lookup, system_id LIMIT 3"
        )
    stale = cli(env, "stale", "--start", "2021-12-10", "--end", "2021-12-10", "--stage", "grading")
    assert ["2021-12-10", "prediction_grades", "duplicate", "3"] in [
        line.split() for line in stale.stdout.splitlines()
    ]
    rerun = cli(env, "run", "--dates", "2021-12-10", "--stages", "grading")
    assert rerun.returncode == 0
    assert "No stale rows" in cli(env, "stale", "--start", "2021-12-10", "--end", "2021-12-10").stdout
