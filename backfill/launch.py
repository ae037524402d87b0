"""Starting, resuming, rerunning and cancelling backfills: the one entry point of CLI and console.

A run is first recorded in the ledger, then executed either here (the CLI's foreground ``run``) or
by a detached worker process (``python -m backfill worker RUN_ID`` in its own session), which
keeps going when the browser that launched it closes. Either way progress is read from the ledger.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from backfill.access import require_operator
from backfill.config import DEFAULT_LEDGER, Settings
from backfill.errors import BackfillError, BadInput
from backfill.ledger import Ledger, Run
from backfill.ledger.database import is_postgresql
from backfill.request import BackfillRequest
from backfill.runner import RunResult, create_run, execute_run
from backfill.warehouse import Warehouse, connect

RERUN_STATUSES = ("failed", "blocked", "cancelled")
"""Item statuses that "rerun failed" picks up: everything a run did not finish."""


def submit(
    settings: Settings,
    request: BackfillRequest,
    who: str,
    *,
    parent_run_id: str | None = None,
    warehouse: Warehouse | None = None,
) -> str:
    """Record a run and hand it to a detached worker process; returns the run id at once."""
    require_operator(settings, who, "launch backfills")
    ledger = Ledger(settings.ledger)
    warehouse = warehouse or connect(settings)
    run_id = create_run(ledger, warehouse, request, who, parent_run_id=parent_run_id)
    spawn_worker(settings, run_id)
    return run_id


def spawn_worker(settings: Settings, run_id: str) -> subprocess.Popen:
    """Start ``python -m backfill worker RUN_ID`` in its own session, logging beside the ledger (or in data/)."""
    log_dir = Path(DEFAULT_LEDGER if is_postgresql(settings.ledger) else settings.ledger).parent / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BACKFILL_WAREHOUSE=settings.warehouse, BACKFILL_LEDGER=settings.ledger)
    project_root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [project_root, env.get("PYTHONPATH")]))
    with open(log_dir / f"{run_id}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "backfill", "worker", run_id],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def run_here(
    settings: Settings,
    request: BackfillRequest,
    who: str,
    *,
    parent_run_id: str | None = None,
    warehouse: Warehouse | None = None,
    **options,
) -> RunResult:
    """Record a run and execute it in this process until it ends."""
    require_operator(settings, who, "launch backfills")
    ledger = Ledger(settings.ledger)
    warehouse = warehouse or connect(settings)
    run_id = create_run(ledger, warehouse, request, who, parent_run_id=parent_run_id)
    return execute_run(run_id, warehouse, settings, ledger, **options)


def resume(
    settings: Settings, run_id: str, who: str, *, warehouse: Warehouse | None = None, **options
) -> RunResult:
    """Finish a queued or interrupted run (only its unfinished items)."""
    require_operator(settings, who, "resume runs")
    ledger = Ledger(settings.ledger)
    ledger.detect_interrupted()
    run = ledger.get_run(run_id)
    if run.status == "running":
        raise BackfillError(f"run {run_id} is still running (process {run.pid} on {run.host})")
    if run.status not in ("queued", "interrupted"):
        raise BadInput(f"run {run_id} is {run.status}; only queued or interrupted runs can be resumed")
    if run.status == "queued" and ledger.is_alive(run):
        raise BackfillError(f"run {run_id} is queued and its worker is starting; follow it with runs show")
    ledger.record_action(who, "resume", {}, run_id)
    return execute_run(run_id, warehouse or connect(settings), settings, ledger, **options)


def resume_detached(settings: Settings, run_id: str, who: str) -> str:
    """Resume an interrupted run in a detached worker process (as the console does); returns at once."""
    require_operator(settings, who, "resume runs")
    ledger = Ledger(settings.ledger)
    ledger.detect_interrupted()
    run = ledger.get_run(run_id)
    if run.status != "interrupted":
        raise BadInput(f"run {run_id} is {run.status}; only interrupted runs can be resumed")
    ledger.requeue(run_id)
    ledger.record_action(who, "resume", {"detached": True}, run_id)
    spawn_worker(settings, run_id)
    return run_id


def work(settings: Settings, run_id: str, **options) -> RunResult:
    """Execute a queued run: what a detached worker does. The launch was authorised already."""
    ledger = Ledger(settings.ledger)
    run = ledger.get_run(run_id)
    if run.status != "queued":
        raise BadInput(f"run {run_id} is {run.status}, not queued")
    return execute_run(run_id, connect(settings), settings, ledger, **options)


def rerun_request(ledger: Ledger, run_id: str, only_transient: bool = False) -> BackfillRequest:
    """A request for the dates a run did not finish (or only those that failed transiently)."""
    run = ledger.get_run(run_id)
    items = ledger.items(run_id, RERUN_STATUSES)
    if only_transient:
        items = [item for item in items if item["error_class"] == "transient"]
    if not items:
        what = "transient failures" if only_transient else "failed, blocked or cancelled dates"
        raise BadInput(f"run {run_id} has no {what} to rerun")
    dates = {dt.date.fromisoformat(item["game_date"]) for item in items}
    stages = {item["stage"] for item in items}
    # Predictions depend on MLFS: a date whose MLFS is redone gets its predictions redone too.
    request = BackfillRequest.from_params(run.params)
    if "mlfs" in stages and "predictions" in request.stages:
        stages.add("predictions")
    return request.with_dates(dates, stages)


def rerun(
    settings: Settings, run_id: str, who: str, *, only_transient: bool = False, detach: bool = True, **options
) -> str | RunResult:
    """Rerun what a run did not finish, as a new run whose parent is the old one."""
    require_operator(settings, who, "rerun backfills")
    request = rerun_request(Ledger(settings.ledger), run_id, only_transient)
    if detach:
        return submit(settings, request, who, parent_run_id=run_id)
    return run_here(settings, request, who, parent_run_id=run_id, **options)


def cancel(settings: Settings, run_id: str, who: str) -> Run:
    """Ask a run to stop before its next batch (a batch under way finishes or rolls back whole)."""
    require_operator(settings, who, "cancel runs")
    ledger = Ledger(settings.ledger)
    run = ledger.get_run(run_id)
    if run.status not in ("queued", "running"):
        raise BadInput(f"run {run_id} is {run.status}; only queued or running runs can be cancelled")
    ledger.request_cancel(run_id)
    ledger.record_action(who, "cancel", {}, run_id)
    return ledger.get_run(run_id)


def delete_stale_rows(settings: Settings, start, end, who: str, *, warehouse: Warehouse | None = None):
    """Delete the stale rows of a range in one transaction, recorded in the ledger with who did it."""
    from backfill import stale

    require_operator(settings, who, "delete stale rows")
    deleted = stale.delete_stale(warehouse or connect(settings), settings, start, end)
    details = {
        "start": str(start),
        "end": str(end),
        "rows_by_category": deleted.groupby(["table_name", "category"])["rows"].sum().to_dict()
        if len(deleted)
        else {},
        "dates": sorted({str(day) for day in deleted["game_date"]}) if len(deleted) else [],
    }
    details["rows_by_category"] = {f"{t}.{c}": int(n) for (t, c), n in details["rows_by_category"].items()}
    Ledger(settings.ledger).record_action(who, "delete_stale", details)
    return deleted
