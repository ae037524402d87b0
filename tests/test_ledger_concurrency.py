"""Two CLI processes started at the same moment on overlapping dates of one warehouse, with one
shared ledger (SQLite, then PostgreSQL): each time exactly one runs and the other is refused,
naming the holder (SPEC 4.4's lock, 8.1)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from backfill.ledger import Ledger, RunStatus

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 5
OVERLAPPING = (
    ["--start", "2021-12-01", "--end", "2021-12-20", "--batch-size", "2"],
    ["--start", "2021-12-10", "--end", "2021-12-31", "--batch-size", "2"],
)
"""Small windows make each run last a few seconds, so that on a busy machine the second process
still starts while the first holds its dates (the race is what is tested, not the scheduler)."""

STARTER = """
import runpy, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
# Everything imported before the barrier, so both processes start the race from the same line.
import backfill.cli, backfill.launch, backfill.ledger, backfill.runner, backfill.warehouse.duckdb, psycopg
print("ready", flush=True)
signal.sigwait({signal.SIGUSR1})
sys.argv = ["backfill", *sys.argv[1:]]
runpy.run_module("backfill", run_name="__main__", alter_sys=True)
"""
"""``python -m backfill ARGS`` once SIGUSR1 arrives: the barrier both processes wait at."""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_two_runs_started_together_on_overlapping_dates_one_runs_and_one_is_refused(
    kind, demo_copy, tmp_path, request
):
    ledger = (
        str(tmp_path / "ledger.sqlite") if kind == "sqlite" else request.getfixturevalue("postgres_ledger")
    )
    # Both name the same warehouse file, which is what the leases are of: one by a path relative to its
    # working directory, the other by its absolute path.
    env = os.environ | {"PYTHONPATH": str(ROOT), "BACKFILL_LEDGER": ledger, "BACKFILL_RETRY_DELAYS": "0,0,0"}
    workdirs = [tmp_path / "cli-a", tmp_path / "cli-b"]
    for workdir in workdirs:
        workdir.mkdir()
    warehouses = [os.path.relpath(demo_copy, workdirs[0]), str(demo_copy.resolve())]
    for round_ in range(ROUNDS):
        processes = [
            subprocess.Popen(
                [sys.executable, "-c", STARTER, "run", *dates],
                cwd=workdir,
                env=env | {"BACKFILL_WAREHOUSE": warehouse},
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for workdir, warehouse, dates in zip(workdirs, warehouses, OVERLAPPING)
        ]
        for process in processes:
            assert process.stdout.readline() == "ready\n", process.communicate(timeout=60)
        for process in processes:
            process.send_signal(signal.SIGUSR1)
        outputs = [process.communicate(timeout=300) for process in processes]
        codes = [process.returncode for process in processes]

        runs = Ledger(ledger).list_runs(limit=2)
        (winner,) = [run for run in runs if run.status == RunStatus.SUCCEEDED]
        (loser,) = [run for run in runs if run.status == RunStatus.REFUSED]
        assert sorted(codes) == [0, 1], (round_, outputs)
        refused_out = outputs[codes.index(1)][0]
        assert f"Run {loser.run_id} refused" in refused_out
        assert f"held by run {winner.run_id} (started by " in refused_out
        assert loser.statements == 0  # it wrote nothing
        assert {item["status"] for item in Ledger(ledger).items(loser.run_id)} == {"cancelled"}
    assert len(Ledger(ledger).list_runs(limit=100)) == 2 * ROUNDS
