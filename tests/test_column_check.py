"""The built-in processor against a production-like table (SPEC 7.2): a REQUIRED column it does not
write stops the run before any write; a NULLABLE one is named in the dry run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb

from backfill.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]


def cli(settings, *args: str) -> subprocess.CompletedProcess:
    env = os.environ | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_RETRY_DELAYS": "0,0,0",
    }
    env.pop("BACKFILL_PIPELINE", None)
    return subprocess.run([sys.executable, "-m", "backfill", *args], env=env, capture_output=True, text=True)


def alter(settings, statement: str) -> None:
    with duckdb.connect(settings.warehouse) as database:
        database.execute(statement)


def test_a_required_column_the_builtin_does_not_write_stops_the_run_before_any_write(settings):
    alter(
        settings,
        "ALTER TABLE nba_precompute.ml_feature_store ADD COLUMN model_tag VARCHAR DEFAULT 'x' NOT NULL",
    )
    before = Path(settings.warehouse).read_bytes()
    done = cli(settings, "run", "--dates", "2021-12-09")
    assert done.returncode == 2, done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("error: refused before any write: stage mlfs: ")
    assert "ml_feature_store has REQUIRED column model_tag" in line
    assert Path(settings.warehouse).read_bytes() == before  # nothing written to the warehouse
    assert Ledger(settings.ledger).list_runs() == []  # refused before the run was recorded


def test_a_nullable_column_the_builtin_does_not_write_is_named_in_the_dry_run(settings):
    alter(settings, "ALTER TABLE nba_predictions.player_prop_predictions ADD COLUMN analyst_note VARCHAR")
    before = Path(settings.warehouse).read_bytes()
    done = cli(settings, "run", "--dates", "2021-12-07", "--dry-run")
    assert done.returncode == 0, done.stderr
    assert (
        "warning: predictions: nba_predictions.player_prop_predictions column analyst_note is not written "
        "by the built-in predictions statement and will be NULL on replaced dates"
    ) in done.stdout
    assert Path(settings.warehouse).read_bytes() == before
