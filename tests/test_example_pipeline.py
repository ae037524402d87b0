"""The example team pipeline (examples/team_pipeline): the team's MERGE jobs driven through the CLI.

Expected figures come from direct DuckDB queries of the warehouse, never from the console's output.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from backfill.cli.main import main
from backfill.config import Settings
from backfill.demo import create_declared_tables
from backfill.ledger import Ledger
from backfill.pipeline import load_pipeline
from backfill.warehouse.duckdb import DuckDBWarehouse

pytestmark = pytest.mark.slow  # the team jobs run as subprocesses

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "team_pipeline"
PIPELINE = EXAMPLE / "pipeline.toml"
JOBS = EXAMPLE / "jobs"
DECEMBER = ("--start", "2021-12-01", "--end", "2021-12-31")
STAGE_TABLES = {
    "mlfs": "nba_precompute.ml_feature_store",
    "predictions": "nba_predictions.player_prop_predictions",
    "grading": "nba_predictions.prediction_grades",
}


def _example_warehouse(demo_file: Path, folder: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the demo warehouse with the example's declared tables; the CLI's environment."""
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(demo_file, warehouse)
    settings = Settings(warehouse=str(warehouse), pipeline=load_pipeline(PIPELINE))
    adapter = DuckDBWarehouse(settings, warehouse)
    try:
        create_declared_tables(adapter, settings)
    finally:
        adapter.close()
    environ = {
        "BACKFILL_PIPELINE": str(PIPELINE),
        "BACKFILL_WAREHOUSE": str(warehouse),
        "BACKFILL_LEDGER": str(folder / "ledger.sqlite"),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
    }
    return warehouse, environ


def _cli(capsys, environ: dict[str, str], *argv: str) -> tuple[int, str]:
    code = main(list(argv), environ=environ)
    return code, capsys.readouterr().out


def _query(warehouse: Path, sql: str) -> list[tuple]:
    # The default configuration, as the console opens the file: the run this module made in-process
    # may still hold it open (its idle close comes later), and one process then shares it.
    with duckdb.connect(str(warehouse)) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture(scope="module")
def december_run(demo_file, tmp_path_factory):
    """The example pipeline's December backfill through the CLI, with the flaky predictions job:
    (warehouse, environment, exit code, run id, stale report before the run)."""
    folder = tmp_path_factory.mktemp("example-pipeline")
    warehouse, environ = _example_warehouse(demo_file, folder)
    stale_before = subprocess.run(
        [sys.executable, "-m", "backfill", "stale", *DECEMBER],
        env=os.environ | environ, cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        # The jobs inherit the console's environment: the first attempt at each predictions batch
        # times out, and the markers of first attempts live in this test's folder.
        patch.setenv("TEAM_JOB_FLAKY_FIRST", "1")
        patch.setenv("TEAM_JOB_FLAKY_DIR", str(folder / "flaky"))
        code = main(["run", *DECEMBER], environ=environ)
    (run,) = Ledger(environ["BACKFILL_LEDGER"]).list_runs()
    return warehouse, environ, code, run.run_id, stale_before


def test_the_declared_grading_table_is_created_empty(demo_file, tmp_path):
    warehouse, _ = _example_warehouse(demo_file, tmp_path)
    assert _query(warehouse, "SELECT COUNT(*) FROM nba_predictions.prediction_grades") == [(0,)]


def test_the_december_run_of_the_team_jobs_exits_0(december_run):
    _, _, code, _, _ = december_run
    assert code == 0


def test_december_is_at_100_percent_expected_coverage_for_all_three_stages(december_run, capsys):
    warehouse, environ, _, _, _ = december_run
    ((player_games, players),) = _query(
        warehouse,
        "SELECT COUNT(DISTINCT (game_date, player_lookup)), COUNT(DISTINCT player_lookup) "
        "FROM nba_analytics.player_game_summary WHERE game_date BETWEEN '2021-12-01' AND '2021-12-31'",
    )
    code, out = _cli(capsys, environ, "coverage", *DECEMBER, "--by", "month", "--format", "json")
    assert code == 0
    rows = {row["stage"]: row for row in json.loads(out) if row["period"] == "2021-12"}
    assert set(rows) == set(STAGE_TABLES)
    for stage, row in rows.items():
        assert row["expected_coverage_pct"] == 100.0, stage
        assert (row["player_games_total"], row["players_total"]) == (player_games, players), stage


def test_each_prediction_of_december_is_graded_against_the_points_scored(december_run):
    warehouse, _, _, _, _ = december_run
    # Predicted: players with three or more earlier games this season, two systems each.
    ((expected_predictions,),) = _query(
        warehouse,
        """SELECT 2 * COUNT(*) FROM (
             SELECT game_date, ROW_NUMBER() OVER (PARTITION BY player_lookup ORDER BY game_date) - 1 AS history
             FROM (SELECT DISTINCT game_date, player_lookup FROM nba_analytics.player_game_summary
                   WHERE game_date BETWEEN '2021-08-01' AND '2021-12-31'))
           WHERE game_date >= '2021-12-01' AND history >= 3""",
    )
    ((predictions,),) = _query(
        warehouse,
        "SELECT COUNT(*) FROM nba_predictions.player_prop_predictions "
        "WHERE game_date BETWEEN '2021-12-01' AND '2021-12-31'",
    )
    ((grades, wrong_points, wrong_error),) = _query(
        warehouse,
        """SELECT COUNT(*), COUNT(*) FILTER (g.actual_points != p.points),
             COUNT(*) FILTER (abs(g.absolute_error - abs(p.points - g.predicted_points)) > 1e-9)
           FROM nba_predictions.prediction_grades AS g
           JOIN nba_analytics.player_game_summary AS p USING (game_date, player_lookup)
           WHERE g.game_date BETWEEN '2021-12-01' AND '2021-12-31'""",
    )
    assert predictions == expected_predictions
    assert grades == expected_predictions
    assert (wrong_points, wrong_error) == (0, 0)


def test_clean_stale_removes_what_merge_left_so_december_has_no_stale_rows(december_run, capsys):
    _, environ, _, _, stale_before = december_run
    assert "orphan" in stale_before and "duplicate" in stale_before  # the demo's incident was there
    code, out = _cli(capsys, environ, "stale", *DECEMBER)
    assert code == 0
    assert out.strip() == "No stale rows from 2021-12-01 to 2021-12-31."


def test_december_has_no_duplicate_orphan_or_old_version_by_independent_count(december_run):
    warehouse, _, _, _, _ = december_run
    versions = {"mlfs": "features_v3", "predictions": "form_v2", "grading": "grades_v1"}
    version_columns = {"mlfs": "feature_version", "predictions": "model_version", "grading": "grade_version"}
    keys = {
        "mlfs": "game_date, player_lookup",
        "predictions": "game_date, player_lookup, system_id",
        "grading": "game_date, player_lookup, system_id",
    }
    december = "game_date BETWEEN '2021-12-01' AND '2021-12-31'"
    for stage, table in STAGE_TABLES.items():
        ((duplicates,),) = _query(
            warehouse,
            f"SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) AS n FROM {table} WHERE {december} "
            f"GROUP BY {keys[stage]})",
        )
        ((orphans,),) = _query(
            warehouse,
            f"SELECT COUNT(*) FROM {table} AS t WHERE {december} AND NOT EXISTS (SELECT 1 FROM "
            "nba_analytics.player_game_summary AS p WHERE p.game_date = t.game_date "
            "AND p.player_lookup = t.player_lookup)",
        )
        ((old,),) = _query(
            warehouse,
            f"SELECT COUNT(*) FROM {table} WHERE {december} AND {version_columns[stage]} != '{versions[stage]}'",
        )
        assert (duplicates, orphans, old) == (0, 0, 0), stage


def test_the_flaky_predictions_batches_were_retried_and_the_others_ran_once(december_run):
    _, environ, _, run_id, _ = december_run
    items = Ledger(environ["BACKFILL_LEDGER"]).items(run_id)
    attempts = {stage: {item["attempts"] for item in items if item["stage"] == stage and item["status"] == "done"}
                for stage in STAGE_TABLES}  # fmt: skip
    # TEAM_JOB_FLAKY_FIRST fails the first attempt of every predictions batch, exactly once.
    assert attempts == {"mlfs": {1}, "predictions": {2}, "grading": {1}}
    statuses = {item["status"] for item in items}
    assert statuses <= {"done", "skipped"}


def test_runs_show_lists_the_retried_attempts(december_run, capsys):
    _, environ, _, run_id, _ = december_run
    code, out = _cli(capsys, environ, "runs", "show", run_id)
    assert code == 0
    line = next(text for text in out.splitlines() if text.startswith("2021-12-07  predictions"))
    assert line.split()[2:4] == ["done", "2"]


def test_the_jobs_output_is_in_the_runs_log(december_run):
    _, environ, _, run_id, _ = december_run
    messages = [event["message"] for event in Ledger(environ["BACKFILL_LEDGER"]).events(run_id, limit=1000)]
    assert "mlfs job: [mlfs] computing features for 10 dates, 2021-12-01 to 2021-12-10" in messages
    assert any(m.startswith("predictions job: google.api_core.exceptions.DeadlineExceeded") for m in messages)
    assert any(m.startswith("grading job: [grading] done:") for m in messages)
    # Per-date outcome lines are the contract's, not log lines.
    assert not any('"status": "done"' in m for m in messages)


# -- the jobs by hand -----------------------------------------------------------------------------


def _job(script: str, *args: str, environ: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BACKFILL_", "TEAM_JOB_"))}
    return subprocess.run(
        [sys.executable, str(JOBS / script), *args],
        env=env | (environ or {}), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_job_refuses_a_bigquery_warehouse_in_one_line():
    result = _job(
        "ml_feature_store_backfill.py",
        "--dates",
        "2021-12-01",
        environ={"BACKFILL_WAREHOUSE": "bigquery://p"},
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "DuckDB files only" in result.stderr and result.stdout == ""


def test_the_predictions_job_checks_mlfs_coverage_itself_unless_told_to_skip(demo_file, tmp_path):
    warehouse, _ = _example_warehouse(demo_file, tmp_path)
    count = "SELECT COUNT(*) FROM nba_predictions.player_prop_predictions WHERE game_date = '2021-12-09'"
    checked = _job(
        "player_prop_predictions_backfill.py", "--dates", "2021-12-09", "--warehouse", str(warehouse)
    )
    outcomes = [json.loads(line) for line in checked.stdout.splitlines() if line.startswith("{")]
    assert checked.returncode == 0
    assert [(o["date"], o["status"]) for o in outcomes] == [("2021-12-09", "failed")]
    assert "below 90%" in outcomes[0]["error"]
    assert _query(warehouse, count) == [(0,)]
    skipped = _job(
        "player_prop_predictions_backfill.py", "--dates", "2021-12-09", "--skip-mlfs-check",
        "--warehouse", str(warehouse),
    )  # fmt: skip
    assert skipped.returncode == 0
    assert '{"date": "2021-12-09", "status": "done"' in skipped.stdout
    assert _query(warehouse, count)[0][0] > 0


def test_a_job_run_by_hand_merges_and_leaves_the_orphans_behind(demo_file, tmp_path):
    warehouse, _ = _example_warehouse(demo_file, tmp_path)
    orphans = (
        "SELECT COUNT(*) FROM nba_precompute.ml_feature_store AS m WHERE game_date = '2021-12-03' AND NOT EXISTS "
        "(SELECT 1 FROM nba_analytics.player_game_summary AS p "
        "WHERE p.game_date = m.game_date AND p.player_lookup = m.player_lookup)"
    )
    before = _query(warehouse, orphans)[0][0]
    result = _job("ml_feature_store_backfill.py", "--dates", "2021-12-03", "--warehouse", str(warehouse))
    assert result.returncode == 0, result.stdout + result.stderr
    assert before > 0
    assert _query(warehouse, orphans)[0][0] == before


def test_the_consoles_skip_gate_reaches_the_teams_job_through_its_environment(demo_file, tmp_path, capsys):
    warehouse, environ = _example_warehouse(demo_file, tmp_path)
    count = "SELECT COUNT(*) FROM nba_predictions.player_prop_predictions WHERE game_date = DATE '2021-12-09'"
    assert _query(warehouse, count) == [(0,)]  # the incident: Dec 9 has no predictions
    code, out = _cli(capsys, environ, "run", "--dates", "2021-12-09", "--stages", "predictions")
    assert code == 1 and "blocked" in out  # the console's gate: MLFS covers too few players
    code, out = _cli(
        capsys, environ, "run", "--dates", "2021-12-09", "--stages", "predictions", "--skip-mlfs-check"
    )
    # Past both gates (the console's and the job's own): predictions for the players MLFS has, and
    # the date, still short of complete for want of MLFS, is failed (upstream) rather than done.
    assert _query(warehouse, count)[0][0] > 0
    assert code == 1 and "failed (upstream)" in out
