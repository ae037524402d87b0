"""Starting, resuming, rerunning and cancelling backfills: the one entry point of CLI and console.

A run is first recorded in the ledger, then executed either here (the CLI's foreground ``run``) or
by a detached worker process (``python -m backfill worker RUN_ID`` in its own session), which
keeps going when the browser that launched it closes. Either way progress is read from the ledger.

The runner (and pandas with it) and the upstream-rerun rules are imported inside the functions
that run or plan work, so a command that only reads or cancels runs does not pay for them.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from backfill.access import require_operator
from backfill.config import DEFAULT_LEDGER, Settings
from backfill.cost_labels import job_labels
from backfill.doctor import check_before_writing
from backfill.errors import BackfillError, BadInput
from backfill.holds import leased, refuse_overlap
from backfill.ledger import AlreadyLaunched, Ledger, Run
from backfill.ledger.database import is_postgresql
from backfill.pipeline import Pipeline
from backfill.processors import processor_for
from backfill.replay import settings_for_run
from backfill.request import BackfillRequest
from backfill.rerun_rules import RERUN_STATUSES
from backfill.retry import RetryPolicy
from backfill.warehouse import Warehouse, connect

if TYPE_CHECKING:
    from backfill.runner import RunResult


def submit(
    settings: Settings,
    request: BackfillRequest,
    who: str,
    *,
    parent_run_id: str | None = None,
    warehouse: Warehouse | None = None,
    launch_key: str | None = None,
) -> str:
    """Record a run and hand it to a detached worker process; returns the run id at once.

    Refused (:class:`DatesHeld`, nothing recorded) when a live run on the same warehouse holds any
    of the request's (stage, date) pairs: its leases would refuse the run as soon as it started.
    The warehouse is not opened here, so a launch never waits on a busy file: the worker asks the
    preflight of every write before it writes (:func:`backfill.doctor.check_before_writing`), and
    the console and the CLI ask it before they offer or submit a launch.

    ``launch_key`` makes the launch idempotent (the console sends one per click): a key already
    recorded is refused with :class:`~backfill.ledger.AlreadyLaunched`, naming its run, before the
    overlap check (which would otherwise name the repeat's own run as the holder)."""
    from backfill.runner import create_run

    require_operator(settings, who, "launch backfills")
    warehouse = warehouse or connect(settings)
    ledger = Ledger(settings.ledger)
    if launch_key is not None and (launched := ledger.launched_run(launch_key)) is not None:
        raise AlreadyLaunched(launched)
    refuse_overlap(ledger, warehouse.url, request.items(), settings.pipeline.labels)
    run_id = create_run(ledger, warehouse, request, who, parent_run_id=parent_run_id, launch_key=launch_key)
    spawn_worker(settings, run_id)
    return run_id


def preflight(settings: Settings, warehouse: Warehouse, request: BackfillRequest) -> list[str]:
    """The preflight of every write (:func:`backfill.doctor.check_before_writing`) and what the
    stages' processors check (a run does the same once it holds its dates): BadInput for what stops
    a run; else the warnings a dry run shows (for example columns a replace leaves NULL)."""
    check_before_writing(warehouse)
    warnings = []
    for name in request.stages:
        warnings += processor_for(settings.pipeline.stage(name), settings.pipeline).preflight(warehouse)
    return warnings


def spawn_worker(settings: Settings, run_id: str) -> subprocess.Popen:
    """Start ``python -m backfill worker RUN_ID`` in its own session, logging beside the ledger (or in data/)."""
    log_dir = Path(DEFAULT_LEDGER if is_postgresql(settings.ledger) else settings.ledger).parent / "runs"
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, BACKFILL_WAREHOUSE=settings.warehouse, BACKFILL_LEDGER=settings.ledger)
    env["BACKFILL_PIPELINE"] = settings.pipeline.path
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
    from backfill.runner import create_run, execute_run

    require_operator(settings, who, "launch backfills")
    warehouse = warehouse or connect(settings)
    check_before_writing(warehouse)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, who, parent_run_id=parent_run_id, here=True)
    return execute_run(run_id, warehouse, settings, ledger, **options)


def _recorded(settings: Settings, run: Run, warehouse: Warehouse | None) -> tuple[Settings, Warehouse]:
    """The settings and warehouse a recorded run continues with (never the current environment's)."""
    recorded = settings_for_run(settings, run.params, run.run_id)
    if warehouse is not None and warehouse.url != recorded.warehouse:
        raise BadInput(f"run {run.run_id} writes to {recorded.warehouse}, not {warehouse.url}")
    return recorded, warehouse or connect(recorded)


def resume(
    settings: Settings, run_id: str, who: str, *, warehouse: Warehouse | None = None, **options
) -> RunResult:
    """Finish a queued or interrupted run (only its unfinished items)."""
    from backfill.runner import execute_run

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
    recorded, warehouse = _recorded(settings, run, warehouse)
    check_before_writing(warehouse)
    ledger.record_action(who, "resume", {}, run_id)
    return execute_run(run_id, warehouse, recorded, ledger, **options)


def resume_detached(settings: Settings, run_id: str, who: str) -> str:
    """Resume an interrupted run in a detached worker process (as the console does); returns at once."""
    require_operator(settings, who, "resume runs")
    ledger = Ledger(settings.ledger)
    ledger.detect_interrupted()
    run = ledger.get_run(run_id)
    if run.status != "interrupted":
        raise BadInput(f"run {run_id} is {run.status}; only interrupted runs can be resumed")
    recorded = settings_for_run(settings, run.params, run_id)
    # Its worker asks the preflight before it writes, as a launch's does (the file may be busy now).
    ledger.requeue(run_id)
    ledger.record_action(who, "resume", {"detached": True}, run_id)
    spawn_worker(recorded, run_id)
    return run_id


def work(settings: Settings, run_id: str, **options) -> RunResult:
    """Execute a queued run: what a detached worker does. The launch was authorised already."""
    from backfill.runner import execute_run

    ledger = Ledger(settings.ledger)
    run = ledger.get_run(run_id)
    if run.status != "queued":
        raise BadInput(f"run {run_id} is {run.status}, not queued")
    recorded, warehouse = _recorded(settings, run, None)
    return execute_run(run_id, warehouse, recorded, ledger, **options)


def rerun_request(
    ledger: Ledger, run_id: str, pipeline: Pipeline, only_transient: bool = False
) -> BackfillRequest:
    """A request for the dates a run did not finish (or only those that failed transiently)."""
    run = ledger.get_run(run_id)
    items = ledger.items(run_id, RERUN_STATUSES)
    if only_transient:
        items = [item for item in items if item["error_class"] == "transient"]
    if not items:
        what = "transient failures" if only_transient else "failed, blocked or cancelled dates"
        raise BadInput(f"run {run_id} has no {what} to rerun")
    dates = {dt.date.fromisoformat(item["game_date"]) for item in items}
    # A date whose upstream stage is redone gets its downstream stages redone too (SPEC 7.3).
    stages = pipeline.downstream_of({item["stage"] for item in items})
    return BackfillRequest.from_params(run.params).with_dates(dates, stages)


def rerun(
    settings: Settings,
    run_id: str,
    who: str,
    *,
    only_transient: bool = False,
    detach: bool = True,
    launch_key: str | None = None,
    **options,
) -> str | RunResult:
    """Rerun what a run did not finish, as a new run whose parent is the old one (``launch_key``:
    as for :func:`submit`, a repeated key records no second run)."""
    require_operator(settings, who, "rerun backfills")
    ledger = Ledger(settings.ledger)
    recorded = settings_for_run(settings, ledger.get_run(run_id).params, run_id)
    request = rerun_request(ledger, run_id, recorded.pipeline, only_transient)
    if detach:
        return submit(recorded, request, who, parent_run_id=run_id, launch_key=launch_key)
    return run_here(recorded, request, who, parent_run_id=run_id, **options)


def rerun_with_upstream(settings: Settings, run_id: str, who: str, *, launch_key: str | None = None) -> str:
    """Rerun a run's blocked dates with their upstream stage first, as a new detached run."""
    from backfill import upstream_rerun

    require_operator(settings, who, "rerun backfills")
    ledger = Ledger(settings.ledger)
    recorded = settings_for_run(settings, ledger.get_run(run_id).params, run_id)
    request = upstream_rerun.run_request(ledger, run_id, recorded.pipeline)
    return submit(recorded, request, who, parent_run_id=run_id, launch_key=launch_key)


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


def refuse_if_active(settings: Settings, warehouse_url: str, what: str) -> None:
    """BadInput when a run is queued or running on the warehouse (``what`` would pull it from under it)."""
    ledger = Ledger(settings.ledger)
    if not ledger.exists():  # no ledger yet: no run either (and a check never creates one)
        return
    active = ledger.active_runs_on(warehouse_url)
    if active:
        run = active[0]
        raise BadInput(
            f"run {run.run_id} (started by {run.created_by}) is {run.status} on {warehouse_url}; "
            f"{what} would pull the warehouse from under it (wait for it or cancel it first)"
        )


def delete_stale_rows(
    settings: Settings, start, end, who: str, *, warehouse: Warehouse | None = None, stages=None
):
    """Delete the stale rows of a range in one transaction, recorded in the ledger with who did it."""
    from backfill import stale

    require_operator(settings, who, "delete stale rows")
    target = warehouse or connect(settings)
    check_before_writing(target)
    # A writer like any other: leases on its (stage, date) items, and the retry policy.
    pairs = stale.delete_pairs(settings, start, end, stages)
    with (
        leased(Ledger(settings.ledger), target.url, pairs, who),
        target.labels(**job_labels("stale_delete", who)),
    ):
        deleted, _ = RetryPolicy(max_attempts=settings.max_attempts, delays=settings.retry_delays).call(
            lambda: stale.delete_stale(target, settings, start, end, stages)
        )
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
