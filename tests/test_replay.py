"""Runs are replayable (SPEC 7.4): a resume or rerun continues with what its run recorded (the
warehouse, the pipeline file, the datasets), never the current environment; a changed pipeline file
is refused in one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backfill.ledger import Ledger

ROOT = Path(__file__).resolve().parents[1]

PIPELINE = (ROOT / "backfill" / "pipelines" / "demo.toml").read_text()


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill", *args], env=env, capture_output=True, text=True, timeout=300
    )


def environment(settings, warehouse: str, **extra) -> dict:
    env = {name: value for name, value in os.environ.items() if name != "BACKFILL_PIPELINE"}
    return (
        env
        | {
            "PYTHONPATH": str(ROOT),
            "BACKFILL_WAREHOUSE": warehouse,
            "BACKFILL_LEDGER": settings.ledger,
            "BACKFILL_CONFIG": os.devnull,
            "BACKFILL_RETRY_DELAYS": "0,0,0",
            "BACKFILL_BATCH_SIZE": "8",
        }
        | extra
    )


@pytest.mark.slow
def test_resume_writes_to_the_recorded_warehouse_whatever_the_environment_says(settings, tmp_path):
    other = tmp_path / "other.duckdb"
    shutil.copy(settings.warehouse, other)
    other_before = other.read_bytes()
    crashed = cli(
        environment(settings, settings.warehouse, BACKFILL_CRASH_AT="after_replace:2"),
        "run", "--start", "2021-12-01", "--end", "2021-12-31",
    )  # fmt: skip
    assert crashed.returncode == -9
    (run,) = Ledger(settings.ledger).list_runs()

    resumed = cli(environment(settings, str(other)), "runs", "resume", run.run_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert other.read_bytes() == other_before  # the other warehouse was never touched
    december = cli(
        environment(settings, settings.warehouse), "coverage", "--start", "2021-12-01", "--end", "2021-12-31"
    )
    rows = [line.split() for line in december.stdout.splitlines() if line.startswith("2021-12")]
    assert [(row[1], row[2]) for row in rows] == [("mlfs", "ok"), ("predictions", "ok")]


@pytest.mark.slow
def test_resume_and_rerun_refuse_a_pipeline_file_that_changed_since(settings, tmp_path):
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(PIPELINE)
    env = environment(settings, settings.warehouse, BACKFILL_PIPELINE=str(pipeline))
    blocked = cli(env, "run", "--dates", "2021-12-09", "--stages", "predictions")
    assert blocked.returncode == 1  # blocked by the gate: something to rerun
    (run,) = Ledger(settings.ledger).list_runs()
    assert run.params["context"]["pipeline_path"] == str(pipeline.resolve())

    pipeline.write_text(PIPELINE.replace('current_version = "form_v2"', 'current_version = "form_v3"'))
    before = Path(settings.warehouse).read_bytes()
    for args in (("run", "--rerun-failed", run.run_id), ("runs", "resume", run.run_id)):
        refused = cli(env, *args)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert refused.stderr.count("\n") == 1
    refusal = cli(env, "run", "--rerun-failed", run.run_id).stderr
    assert "has changed since (stage predictions: current_version changed)" in refusal
    assert Path(settings.warehouse).read_bytes() == before
    assert len(Ledger(settings.ledger).list_runs()) == 1  # no new run was recorded
