"""The CLI end to end against the emulator, in subprocesses, as an operator would run it.

``BIGQUERY_EMULATOR_HOST=... BACKFILL_WAREHOUSE=bigquery://demo-project python -m backfill demo``,
then coverage, a dry run, the December backfill and its record; the DuckDB demo of the same seed
is the reference for every figure.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from backfill import cli

REPO = Path(__file__).resolve().parents[2]
PROJECT = "demo-project"
DEMO_SEED = 7
DECEMBER = ["--start", "2021-12-01", "--end", "2021-12-31"]


@pytest.fixture(scope="module")
def environ(bigquery_emulator, emulator_settings, tmp_path_factory) -> dict[str, str]:
    """The operator's environment: the emulator, a BigQuery warehouse, this module's datasets."""
    home = tmp_path_factory.mktemp("cli")
    env = {key: value for key, value in os.environ.items() if not key.startswith(("BACKFILL_", "BQEMU_"))}
    return env | {
        "BIGQUERY_EMULATOR_HOST": bigquery_emulator,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": emulator_settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": emulator_settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": emulator_settings.predictions_dataset,
        "BACKFILL_LEDGER": str(home / "ledger.sqlite"),
        "BACKFILL_CONFIG": os.devnull,
    }


def backfill(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill", *args],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def duckdb_monthly(tmp_path_factory) -> list[dict]:
    """``coverage --by month --format json`` of the DuckDB demo of the same seed (in-process)."""
    path = tmp_path_factory.mktemp("reference") / "warehouse.duckdb"
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_LEDGER": str(path.parent / "l.db"),
    }
    out = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        assert cli.main(["demo", "--warehouse", str(path), "--seed", str(DEMO_SEED)], environ=environ) == 0
    with redirect_stdout(out), redirect_stderr(io.StringIO()):
        coverage = ["coverage", "--warehouse", str(path), "--by", "month", "--format", "json"]
        assert cli.main(coverage, environ=environ) == 0
    return json.loads(out.getvalue())


@pytest.fixture(scope="module")
def built(environ) -> subprocess.CompletedProcess:
    return backfill(environ, "demo", "--seed", str(DEMO_SEED))


def test_demo_builds_in_bigquery(built, bigquery_emulator):
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(
        f"Built the demo warehouse at BigQuery project {PROJECT} (emulator at {bigquery_emulator})"
    )
    assert "rows:     28,648 player-games" in built.stdout


def test_demo_refuses_to_drop_an_earlier_demo_without_replace(built, environ):
    again = backfill(environ, "demo")
    assert again.returncode == 2
    assert again.stderr.endswith(
        "already holds the demo (ml_feature_store, player_game_summary, "
        "player_prop_predictions); give --replace to drop and rebuild it\n"
    )
    assert again.stderr.count("\n") == 1 and again.stdout == ""


@pytest.fixture(scope="module")
def monthly(built, environ) -> subprocess.CompletedProcess:
    return backfill(environ, "coverage", "--by", "month", "--format", "json")


def test_coverage_by_month_is_the_duckdb_demos(monthly, duckdb_monthly):
    assert monthly.returncode == 0, monthly.stderr
    rows = json.loads(monthly.stdout)
    assert rows == duckdb_monthly
    december = {row["stage"]: row for row in rows if row["period"] == "2021-12"}
    assert december["predictions"]["status"] == "missing"
    assert december["predictions"]["expected_coverage_pct"] < 100.0


def test_coverage_notes_its_bigquery_estimate(monthly):
    assert re.fullmatch(
        r"note: BigQuery estimate: \d+ B processed by 2 statements; dry run on BigQuery project "
        rf"{PROJECT} \(emulator at [\d.:]+\)\n",
        monthly.stderr,
    )


def test_dry_run_plans_december_and_notes_its_estimate(monthly, environ):
    planned = backfill(environ, "run", *DECEMBER, "--dry-run")
    assert planned.returncode == 0, planned.stderr
    assert "nothing is written" in planned.stdout
    assert "processed by 5 statements" in planned.stderr


@pytest.fixture(scope="module")
def december_run(monthly, environ) -> subprocess.CompletedProcess:
    return backfill(environ, "run", *DECEMBER)


def test_december_backfill_exits_0_and_december_is_complete(december_run, environ):
    assert december_run.returncode == 0, december_run.stderr + december_run.stdout
    assert re.match(
        r"Run \S+ succeeded in [\d.]+ s: 60 done, 2 skipped; 11 warehouse statements", december_run.stdout
    )
    after = backfill(environ, "coverage", *DECEMBER, "--format", "json")
    assert after.returncode == 0, after.stderr
    for row in json.loads(after.stdout):
        assert (row["stage"], row["expected_coverage_pct"], row["status"]) == (row["stage"], 100.0, "ok")
    stale = backfill(environ, "stale", *DECEMBER)
    assert (stale.returncode, stale.stdout) == (0, "No stale rows from 2021-12-01 to 2021-12-31.\n")


def test_runs_show_the_statements_the_backfill_sent(december_run, environ):
    run_id = december_run.stdout.split()[1]
    shown = backfill(environ, "runs", "show", run_id)
    assert shown.returncode == 0, shown.stderr
    assert f"on bigquery://{PROJECT}" in shown.stdout
    assert "11 warehouse statements" in shown.stdout
