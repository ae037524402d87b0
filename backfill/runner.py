"""The backfill runner: gated, atomic, set-based, retried, verified and resumable.

A run works through its unfinished items in windows of dates (the request's batch size). In each
window, every stage runs in dependency order, so a date's upstream stage is finished (done, failed
or blocked) before its downstream stage starts on it. For a stage it measures the window (coverage
before, and the gate), hands the runnable dates to the stage's processor in batches of the
processor's size (up to ``max_parallel`` at once), deletes what the job left stale when the stage
asks for it, and measures again: verification decides whether a date is done, whatever the
processor said. A permanent failure of a batch is isolated by splitting it in halves, so one bad
date never blocks the others; transient failures are retried by the policy of :mod:`backfill.retry`.

Every outcome is checkpointed in the ledger before the next window starts, and the run record is
re-read before each window so that a cancel takes effect there. Items finished are never redone, so
a resume after a crash does only what is left; a replace is idempotent, so redoing a batch whose
commit the ledger missed is harmless. However the run ends, no item is left pending or running.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from backfill import batching, coverage, replay, stale, stray_writes
from backfill.config import Settings
from backfill.cost_labels import job_labels
from backfill.crashpoints import AFTER_REPLACE, BEFORE_REPLACE, crash_point
from backfill.doctor import check_before_writing
from backfill.errors import BadInput, GaveUp, RunCancelled
from backfill.faults import PERMANENT, classify
from backfill.gates import judge
from backfill.ledger import ITEM_OPEN, LeaseConflict, LeaseLost, Ledger, now_utc
from backfill.processors import BatchResult, JobContext, JobFailed, JobTimedOut, Processor, processor_for
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse

DONE_STATUSES = ("ok", "bootstrap")
"""Date statuses that verification accepts as done."""

UNCLEAN = "unclean"
"""Error class of a complete date whose stage still has stale rows on it, or whose clean-up failed."""

HEARTBEAT_EVERY_S = 2.0


class Measurement(dict[tuple[dt.date, str], dict]):
    """Daily coverage rows of a window, by (date, stage), and the frame they were read from."""

    def __init__(self, frame: pd.DataFrame):
        names = list(frame.columns)
        # Rows built from whole columns (tolist gives the plain values to_dict("records") gives, at a
        # fraction of its cost on a season of dates).
        rows = (dict(zip(names, values)) for values in zip(*(frame[name].tolist() for name in names)))
        super().__init__(((row["game_date"], row["stage"]), row) for row in rows)
        self.frame = frame


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status and item counts by status."""

    run_id: str
    status: str
    counts: dict[str, int]
    statements: int
    message: str | None = None
    bad_input: bool = False
    """The run stopped before any write because a setting or the warehouse's tables do not fit."""
    measured: pd.DataFrame | None = field(default=None, compare=False, repr=False)
    """Coverage of each (date, stage) the run measured, as it left it: its last measurement, taken
    after its writes (daily coverage rows); None when it measured nothing."""

    @property
    def exit_code(self) -> int:
        """0 when every date is done (or had no games), 2 for a bad setting found before any write,
        1 otherwise."""
        if self.bad_input:
            return 2
        return 0 if self.status == "succeeded" else 1


@dataclass
class _Outcome:
    """What happened to one date of a stage in a batch (mutable while the batch runs)."""

    attempts: int = 0
    error: BaseException | None = None


def create_run(
    ledger: Ledger,
    warehouse: Warehouse,
    request: BackfillRequest,
    who: str,
    parent_run_id: str | None = None,
    launch_key: str | None = None,
    here: bool = False,
) -> str:
    """Record a queued run for a request; nothing is written to the warehouse yet. The run's window
    (dates per batch) is the request's, or sized by the work now, and recorded with it. A
    ``launch_key`` already recorded raises :class:`~backfill.ledger.AlreadyLaunched`; ``here``: this
    process executes it (see :meth:`Ledger.create_run`'s ``held_here``)."""
    size, sized_by = batching.window_size(request, warehouse.settings)
    run_id = ledger.create_run(
        params=request.to_params()
        | {"batch_size": size, "batch_size_asked": request.batch_size, "batch_size_by": sized_by}
        | {"context": replay.run_context(warehouse.settings, warehouse)},
        items=request.items(),
        created_by=who,
        warehouse=warehouse.url,
        parent_run_id=parent_run_id,
        launch_key=launch_key,
        held_here=here,
    )
    ledger.record_action(who, "launch", {"dates": len(request.dates), "stages": request.stages}, run_id)
    return run_id


class Runner:
    """Executes one run against a warehouse, checkpointing every batch in the ledger."""

    def __init__(
        self,
        warehouse: Warehouse,
        settings: Settings,
        ledger: Ledger,
        run_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], dt.datetime] = now_utc,
        monotonic: Callable[[], float] = time.monotonic,
        echo: Callable[[str], None] | None = None,
    ):
        self.warehouse = warehouse
        self.settings = settings
        self.ledger = ledger.patient()  # a PostgreSQL outage of seconds is a wait for a run
        self.run_id = run_id
        self.clock = clock
        self.monotonic = monotonic
        self.echo = echo
        params = ledger.get_run(run_id).params
        self.request = BackfillRequest.from_params(params)
        self.window_size: int = params.get("batch_size") or batching.window_size(self.request, settings)[0]
        # No size was asked: windows also end with their season (batching.windows).
        self.sized_by_work = str(params.get("batch_size_by", "")).startswith("sized by the work")
        self.policy = self.request.retry_policy(sleep=sleep)
        self.pipeline = settings.pipeline
        self.processors: dict[str, Processor] = {
            name: processor_for(self.pipeline.stage(name), self.pipeline) for name in self.request.stages
        }
        self._statements_at_start = warehouse.statements_issued
        recorded = ledger.get_run(run_id)
        self._statements_recorded = recorded.statements  # a resume keeps counting
        self._billed_at_start = warehouse.bytes_billed
        self._billed_recorded = int(recorded.params.get("bytes_billed") or 0)
        self._stop_heartbeat = threading.Event()
        # What each window measured of its own dates, in order (the latest row of a (date, stage)
        # wins): the run's coverage snapshot. Kept as frames: a long run's millions of row objects
        # made every garbage collection of the run slower (issue 13).
        self._measured: list[pd.DataFrame] = []
        self._stray_writes: dict[str, set[str]] = {}
        """Dates each stage's jobs changed without being given them (kept in the run's parameters)."""

    # -- the run ----------------------------------------------------------------------------

    def execute(self) -> RunResult:
        """Do every unfinished item of the run; returns how it ended."""
        # (stage, date) of each unfinished item: plain pairs, not the ledger's rows, are what the run
        # keeps while it works.
        open_items = self.ledger.item_keys(self.run_id, ITEM_OPEN)
        if self.ledger.get_run(self.run_id).cancel_requested:
            # Cancelled while it waited for its worker: it never starts.
            return self._cancel(before_start=True)
        self.ledger.start_run(self.run_id)
        try:
            self.ledger.acquire_leases(self.run_id, open_items)
        except LeaseConflict as conflict:
            for stage in self.request.stages:
                dates = [day for item_stage, day in open_items if item_stage == stage]
                self.ledger.update_items(
                    self.run_id,
                    stage,
                    dates,
                    status="cancelled",
                    error_class="held",
                    error_message=str(conflict),
                )
            self.ledger.finish_run(self.run_id, "refused", f"refused: {conflict}")
            self._log(f"refused: {conflict}", "error")
            return self._result()
        try:
            # Leases first (the ledger only), then what the warehouse must have: a run refused for
            # its dates never waits on the warehouse, and a bad setting stops it before any write.
            self._retried(lambda: check_before_writing(self.warehouse), "preflight")
            for processor in self.processors.values():
                for warning in self._retried(lambda p=processor: p.preflight(self.warehouse), "preflight")[0]:
                    self._log(warning, "warning")
        except Exception as exc:  # noqa: BLE001 - a run that cannot start ends with every item failed
            self._fail_open(exc, "stopped before any write")
            self._finish("failed", f"stopped before any write: {_one_line(exc)}")
            return replace(self._result(), bad_input=isinstance(exc, BadInput))
        self._log(
            f"started: {_plural(len(open_items), 'open item')} on {self.warehouse.describe()}, "
            f"{_plural(self.window_size, 'date')} per batch"
        )
        heartbeat = threading.Thread(target=self._heartbeat, name=f"heartbeat-{self.run_id}", daemon=True)
        heartbeat.start()
        try:
            dates = sorted({day for _, day in open_items})
            del open_items
            released = self.monotonic()
            for window in self._windows(dates):
                if self.ledger.cancel_requested(self.run_id):
                    return self._cancel()
                # Every job of the run carries its id (BigQuery: a job label), so its cost adds up. The
                # window holds the open database (DuckDB): no idle-close timer started per statement.
                with self.warehouse.labels(backfill_run=self.run_id), self.warehouse.session():
                    self._run_window(window)
                # Between windows a waiting reader of an embedded warehouse file gets in (and, now and
                # then, one that does not say it waits).
                if self.warehouse.readers_waiting():
                    if self.warehouse.make_way():
                        self._log("let a waiting reader of the warehouse in")
                    released = self.monotonic()
                elif self.monotonic() - released >= self.settings.release_every_s:
                    self.warehouse.close()
                    released = self.monotonic()
            self.warehouse.close()
            self._finish(self._final_status())
        except LeaseLost as lost:
            # Another process declared this run dead and took its dates: it is interrupted, and its
            # unfinished items are the resume's to do. Nothing more is written here.
            self._log(f"stopped before writing: {lost}", "error")
            return self._result()
        except RunCancelled:
            # Cancelled while a job worked: the job's tree is already killed.
            return self._cancel(while_working=True)
        except BaseException as exc:
            # The cleanup must not hide why the run stopped.
            with contextlib.suppress(Exception):
                self._fail_open(exc, "the run stopped")
                self._finish("failed", f"stopped by {type(exc).__name__}: {_one_line(exc)}")
            raise
        finally:
            self._stop_heartbeat.set()
        return self._result()

    def _windows(self, dates: list[dt.date]) -> list[list[dt.date]]:
        """The run's windows (:func:`backfill.batching.windows`). Sized by the work, a set-based run
        of more than one season counts its reference rows per date (one statement) so whole seasons
        share a window (:func:`backfill.batching.packed`); the first window is then checked against
        the warehouse's bound, and a bounded run is cut by count."""
        found = batching.windows(dates, self.window_size, by_season=self.sized_by_work)
        rows = self._reference_rows(dates) if self._packs(found) else None
        if rows is not None:
            found = batching.packed(found, rows)
        if found and self._bound_window(found[0]):
            return batching.windows(dates, self.window_size, by_season=self.sized_by_work)
        if rows is not None:
            self.window_size = max(len(window) for window in found)
            self.ledger.record_params(self.run_id, batch_size=self.window_size)
            self._log(
                f"{len(dates)} dates in {len(found)} window{'' if len(found) == 1 else 's'} of whole seasons, "
                f"each up to {batching.WINDOW_ROWS:,} reference rows"
            )
        return found

    def _packs(self, windows: list[list[dt.date]]) -> bool:
        """Whether these season windows may share windows: sized by the work, every stage set-based,
        and more than one of them."""
        return (
            self.sized_by_work and len(windows) > 1 and batching.packs_seasons(list(self.processors.values()))
        )

    def _reference_rows(self, dates: list[dt.date]) -> dict[dt.date, int] | None:
        """Reference rows per date of the run (one retried statement); None when the count failed,
        which costs nothing but the packing: the run goes on a season per window."""
        try:
            with self.warehouse.labels(backfill_run=self.run_id):
                return self._retried(
                    lambda: coverage.reference_rows(self.warehouse, dates[0], dates[-1]), "counting rows"
                )[0]
        except Exception as exc:  # noqa: BLE001 - packing is an optimisation, never the run's outcome
            self._log(
                f"a season per window: counting reference rows failed ({_one_line(exc)[:200]})", "warning"
            )
            return None

    def _bound_window(self, first: list[dt.date]) -> bool:
        """Where the warehouse bounds a batch (BigQuery: the bytes its dry run would process), shrink a
        window sized by the work to fit, record the size and return True; its dry runs are the run's
        jobs. A window of at most 31 dates (what every batch was before sizing) is not checked: no
        extra job for it."""
        if self.request.batch_size is not None or len(first) <= batching.JOB_DATES:
            return False
        bounded = False
        with self.warehouse.labels(backfill_run=self.run_id):
            for processor in self.processors.values():
                bound = self.warehouse.batch_dates_bound(processor, first, self.clock())
                if bound is not None and bound < len(first):
                    first = first[: max(1, bound)]
                    bounded = True
        if bounded:
            self.window_size = len(first)
            self.ledger.record_params(
                self.run_id,
                batch_size=self.window_size,
                batch_size_by="sized by the work, bounded by the warehouse",
            )
            self._log(
                f"{_plural(self.window_size, 'date')} per batch: a larger batch would pass maximum_bytes_billed"
            )
        return bounded

    def _fail_open(self, exc: BaseException, what: str) -> None:
        """Every unfinished item failed with the error's class: nothing is left pending or running."""
        error_class = classify(exc) if isinstance(exc, Exception) else "interrupted"
        self._close_open("failed", error_class, f"{what}: {_one_line(exc)}"[:500])

    def _close_open(self, status: str, error_class: str, message: str) -> None:
        """End every unfinished item of the run with one status, class and message."""
        open_items = self.ledger.items(self.run_id, ITEM_OPEN)
        for stage in self.request.stages:
            open_dates = [_date(i["game_date"]) for i in open_items if i["stage"] == stage]
            if open_dates:
                self.ledger.update_items(
                    self.run_id, stage, open_dates, status=status, error_class=error_class,
                    error_message=message, finished_at=self.clock().isoformat(),
                )  # fmt: skip

    def _log(self, message: str, level: str = "info") -> None:
        """A log line in the ledger (the console shows the latest), echoed to the caller if asked."""
        self.ledger.log(self.run_id, message, level)
        if self.echo is not None:
            self.echo(f"{self.clock():%H:%M:%S} {level:<7} {message}")

    def _log_many(self, messages: list[str], level: str = "info") -> None:
        """Several log lines in one ledger transaction (a job's output)."""
        self.ledger.log_many(self.run_id, messages, level)
        if self.echo is not None:
            for message in messages:
                self.echo(f"{self.clock():%H:%M:%S} {level:<7} {message}")

    def _still_wanted(self, stage: str, dates: list[dt.date]) -> None:
        """Asked while a job works: LeaseLost when another run holds its dates (or this run is no
        longer this process's), RunCancelled when an operator cancelled the run. A ledger that does
        not answer for a moment is not a reason to kill the job: the check before the next write stays."""
        try:
            self.ledger.check_lease(self.run_id, stage, dates)
            cancelled = self.ledger.cancel_requested(self.run_id)
        except LeaseLost:
            raise
        except Exception as exc:  # noqa: BLE001 - see above
            with contextlib.suppress(Exception):
                self._log(
                    f"{stage}: could not ask the ledger about the running job ({_one_line(exc)[:200]})",
                    "warning",
                )
            return
        if cancelled:
            raise RunCancelled(f"run {self.run_id} was cancelled while its {stage} job worked")

    def _heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_EVERY_S):
            # A ledger that does not answer for a moment must not end the heartbeats for good: the
            # next beat tries again (the writes themselves wait out an outage, database.connect).
            with contextlib.suppress(Exception):
                self.ledger.heartbeat(self.run_id, self._statements())

    def _statements(self) -> int:
        return self._statements_recorded + self.warehouse.statements_issued - self._statements_at_start

    def _final_status(self) -> str:
        """``succeeded`` when every item is done or had no games; else ``failed``, or ``blocked`` when
        nothing failed but some dates were gated."""
        counts = self.ledger.item_counts(self.run_id)
        if set(counts) <= {"done", "skipped"}:
            return "succeeded"
        return "failed" if counts.get("failed") or counts.get("cancelled") else "blocked"

    def _last_measured(self) -> pd.DataFrame | None:
        """Each (date, stage)'s last measurement of the run: what it left behind."""
        if not self._measured:
            return None
        return pd.concat(self._measured, ignore_index=True).drop_duplicates(
            ["game_date", "stage"], keep="last"
        )

    def _record_snapshot(self) -> None:
        """Keep the coverage the run left in the coverage history (the watch's), from what it measured."""
        daily = self._last_measured()
        if daily is None:
            return
        try:
            from backfill import history

            history.record_run_snapshot(
                self.settings, self.run_id, self.warehouse, daily["game_date"].unique(), daily=daily
            )
        except Exception as exc:  # noqa: BLE001 - history is a record of the run, never its outcome
            self._log(f"coverage history not recorded: {_one_line(exc)[:200]}", "warning")

    def _finish(self, status: str, message: str | None = None) -> None:
        counts = self.ledger.item_counts(self.run_id)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.ledger.heartbeat(self.run_id, self._statements())
        billed = self.warehouse.bytes_billed
        if billed is not None and self._billed_at_start is not None:
            # What the run's jobs cost (BigQuery's totalBytesBilled), for the Runs page.
            self.ledger.record_params(
                self.run_id, bytes_billed=self._billed_recorded + billed - self._billed_at_start
            )
        self.ledger.finish_run(self.run_id, status, message or summary)
        self._log(f"{status}: {summary}; {self._statements()} warehouse statements")
        self._record_snapshot()

    def _cancel(self, before_start: bool = False, while_working: bool = False) -> RunResult:
        when = "cancelled before the run started" if before_start else "cancelled before this batch started"
        if while_working:
            when = "cancelled while its job worked (the job was stopped)"
        self._close_open("cancelled", "cancelled", when)
        if before_start:
            self.ledger.finish_run(self.run_id, "cancelled", when)
            self._log(when, "warning")
        else:
            self._finish("cancelled")
        return self._result()

    def _result(self) -> RunResult:
        run = self.ledger.get_run(self.run_id)
        return RunResult(
            self.run_id,
            run.status,
            self.ledger.item_counts(self.run_id),
            run.statements,
            run.message,
            measured=self._last_measured(),
        )

    # -- one stage of one window ------------------------------------------------------------

    def _run_window(self, window: list[dt.date]) -> None:
        """Each stage of a window in dependency order; one measurement serves as the previous
        stage's verification and the next stage's "before" (and gate)."""
        open_now = set(
            self.ledger.item_keys(
                self.run_id, ITEM_OPEN, between=(window[0], window[-1]), stages=self.request.stages
            )
        )
        measured: Measurement | None = None
        for stage in self.request.stages:
            dates = [day for day in window if (stage, day) in open_now]
            if dates:
                measured = self._run_stage(stage, dates, measured)

    def _run_stage(self, stage: str, dates: list[dt.date], before: Measurement | None) -> Measurement | None:
        """Gate, process, clean and verify one stage's dates; returns the measurement after it."""
        started = self.monotonic()
        self.ledger.update_items(
            self.run_id, stage, dates, status="running", started_at=self.clock().isoformat()
        )
        try:
            if before is None or not all((day, stage) in before for day in dates):
                before = self._measure(dates)
        except Exception as exc:  # noqa: BLE001 - a window that cannot be measured fails, the run goes on
            self._fail_stage(stage, dates, exc, "measuring coverage before the work")
            return None
        outcomes, runnable = self._judge(stage, dates, before)
        processor = self.processors[stage]
        if runnable and not processor.holds_warehouse:
            self.warehouse.close()  # another process writes: let it open an embedded warehouse file
        results = self._process(stage, processor, runnable) if runnable else {}
        finished = [day for day in runnable if results[day].error is None]
        cleaned, clean_error = (
            self._clean(stage, finished) if processor.clean_stale and finished else ({}, None)
        )
        try:
            after = self._measure(dates) if finished else before
            left = (
                self._stale_left(stage, finished) if finished and not processor.replaces_whole_dates else {}
            )
        except Exception as exc:  # noqa: BLE001
            self._fail_stage(stage, runnable, exc, "verifying coverage after the work")
            return None
        self._measured.append(after.frame[after.frame["game_date"].isin(set(dates))])
        elapsed = self.monotonic() - started
        for day in runnable:
            outcome = results[day]
            fields: dict[str, Any] = {"attempts": outcome.attempts, "duration_s": round(elapsed, 3)}
            if outcome.error is not None:
                fields |= {
                    "status": "failed",
                    "error_class": classify(outcome.error),
                    "error_message": _message(outcome.error),
                }
            else:
                fields |= self._verified(
                    processor,
                    after[(day, stage)],
                    outcomes[day]["coverage_before"],
                    self._upstream_row(stage, day, after),
                )
                fields["stale_rows_deleted"] = cleaned.get(day, 0)
                if fields["status"] == "done" and (clean_error is not None or left.get(day)):
                    fields |= _unclean(clean_error, left.get(day, {}))
            outcomes[day] |= fields
        for day in dates:
            outcomes[day].setdefault("finished_at", self.clock().isoformat())
        self.ledger.record_items(self.run_id, stage, outcomes)
        self.ledger.heartbeat(self.run_id, self._statements())
        counts = {
            status: sum(1 for o in outcomes.values() if o["status"] == status)
            for status in ("done", "failed")
        }
        self._log(
            f"{stage} {dates[0]}..{dates[-1]}: {counts['done']} done, {counts['failed']} failed, "
            f"{len(dates) - len(runnable)} blocked or skipped",
            "warning" if counts["failed"] else "info",
        )
        return after

    def _judge(
        self, stage: str, dates: list[dt.date], before: Measurement
    ) -> tuple[dict[dt.date, dict], list[dt.date]]:
        """Outcomes of dates that will not run (no games, gated), and the dates that will."""
        spec = self.pipeline.stage(stage)
        threshold = self.request.gate_pct(spec.gate_min_upstream_pct)
        outcomes: dict[dt.date, dict] = {}
        runnable = []
        for day in dates:
            row = before[(day, stage)]
            outcomes[day] = {"coverage_before": _coverage_value(row)}
            if row["players_total"] == 0:
                outcomes[day] |= {"status": "skipped", "error_message": "no games on this date"}
                continue
            if threshold is not None:
                upstream = self.pipeline.upstream(spec)
                gate = judge(
                    upstream.label,
                    100.0 * row["upstream_covered"] / row["players_total"],
                    threshold,
                    self.request.skip_gates,
                )
                if not gate.passed:
                    outcomes[day] |= {
                        "status": "blocked",
                        "error_class": "blocked",
                        "error_message": gate.reason,
                    }
                    self._log(f"{stage} {day}: blocked, {gate.reason}", "warning")
                    continue
            runnable.append(day)
        return outcomes, runnable

    def _upstream_row(self, stage: str, day: dt.date, after: Measurement) -> dict | None:
        """The date's row of the stage's upstream when that is a backfillable stage (not the reference)."""
        upstream = self.pipeline.upstream(self.pipeline.stage(stage))
        return after.get((day, upstream.name)) if upstream.name in self.pipeline.stage_names else None

    def _verified(
        self, processor: Processor, row: dict, coverage_before: float | None, upstream: dict | None = None
    ) -> dict:
        """The item's fields after verification: done only when the date reached ok (or bootstrap).
        A date whose upstream stage is not whole either fails for that reason, named (class
        ``upstream``: a rerun with upstream is what it needs, not a plain retry)."""
        fields = {"rows_written": int(row["table_rows"]), "coverage_after": _coverage_value(row)}
        if row["status"] in DONE_STATUSES:
            return fields | {"status": "done", "error_class": None, "error_message": None}
        if upstream is not None and upstream["status"] not in DONE_STATUSES:
            label = self.pipeline.label(upstream["stage"])
            return fields | {
                "status": "failed",
                "error_class": "upstream",
                "error_message": (
                    f"its upstream {label} is {upstream['status']} on this date "
                    f"({_pct_text(_coverage_value(upstream))}), so the {processor.describe()['kind']} "
                    f"processor had nothing to build from: rerun with upstream ({label} first)"
                ),
            }
        return fields | {
            "status": "failed",
            "error_class": "incomplete",
            "error_message": (
                f"the {processor.describe()['kind']} processor finished but the date is {row['status']}: "
                f"coverage {_pct_text(coverage_before)} before, {_pct_text(fields['coverage_after'])} after"
            ),
        }

    def _fail_stage(self, stage: str, dates: list[dt.date], exc: Exception, what: str) -> None:
        self.ledger.update_items(
            self.run_id, stage, dates, status="failed", error_class=classify(exc),
            error_message=f"{what}: {_one_line(exc)}"[:500], finished_at=self.clock().isoformat(),
        )  # fmt: skip
        self._log(f"{stage} {dates[0]}..{dates[-1]}: {what} failed ({_one_line(exc)[:200]})", "error")

    def _measure(self, dates: list[dt.date]) -> Measurement:
        """Coverage of the dates by (date, stage): one retried statement."""
        daily, _ = self._retried(
            lambda: coverage.daily_coverage(self.warehouse, self.settings, min(dates), max(dates))
        )
        return Measurement(daily)

    def _process(self, stage: str, processor: Processor, dates: list[dt.date]) -> dict[dt.date, _Outcome]:
        """The processor's batches of the dates; a job that writes from its own process is watched
        for writes outside its dates (:mod:`backfill.stray_writes`)."""
        if processor.holds_warehouse:
            return self._batches(stage, processor, dates)
        first, last = stray_writes.span(dates)
        try:
            before = stray_writes.fingerprint(self.warehouse, self.pipeline, stage, first, last)
        except Exception as exc:  # noqa: BLE001 - a watch of the job, never its outcome
            self._log(
                f"{stage}: writes outside the jobs' dates not watched ({_one_line(exc)[:200]})", "warning"
            )
            before = None
        self.warehouse.close()  # the job opens an embedded warehouse file itself
        results = self._batches(stage, processor, dates)
        if before is not None:
            try:
                stray = stray_writes.outside(
                    before, stray_writes.fingerprint(self.warehouse, self.pipeline, stage, first, last), dates
                )
            except Exception as exc:  # noqa: BLE001
                self._log(
                    f"{stage}: writes outside the jobs' dates not checked ({_one_line(exc)[:200]})", "warning"
                )
                stray = []
            if stray:
                shown = ", ".join(day.isoformat() for day in stray[:10]) + (" ..." if len(stray) > 10 else "")
                self._log(
                    f"{stage}: while its jobs ran, {len(stray)} dates they were not given changed: {shown}",
                    "warning",
                )
                self._stray_writes.setdefault(stage, set()).update(day.isoformat() for day in stray)
                self.ledger.record_params(
                    self.run_id,
                    writes_outside_dates={name: sorted(days) for name, days in self._stray_writes.items()},
                )
        return results

    def _batches(self, stage: str, processor: Processor, dates: list[dt.date]) -> dict[dt.date, _Outcome]:
        """The processor's batches of the dates, up to ``max_parallel`` at once."""
        crash_point(BEFORE_REPLACE)
        size = processor.batch_size or len(dates)
        batches = _chunks(dates, size)
        results: dict[dt.date, _Outcome] = {}
        if processor.max_parallel <= 1 or len(batches) == 1:
            for batch in batches:
                results |= self._attempt(stage, processor, batch)
            return results
        with ThreadPoolExecutor(
            max_workers=processor.max_parallel, thread_name_prefix=f"batch-{stage}"
        ) as pool:
            for done in pool.map(lambda batch: self._attempt(stage, processor, batch), batches):
                results |= done
        return results

    def _attempt(
        self, stage: str, processor: Processor, dates: list[dt.date], deadline: float | None = None
    ) -> dict[dt.date, _Outcome]:
        """One batch under the retry policy; split in halves on a permanent failure while the batch's
        wall-time budget lasts (``timeout_s`` x ``max_attempts``, what one batch may cost retried):
        halves of slow failures must not cost (2N-1) x ``timeout_s``."""
        budget_s = processor.config.timeout_s * self.request.max_attempts
        if deadline is None:
            deadline = self.monotonic() + budget_s
        elif self.monotonic() >= deadline:  # a half of a failed batch, after the batch's budget
            spent = GaveUp(f"not tried: its batch failed and spent its time budget ({budget_s:g} s)")
            return {day: _Outcome(attempts=0, error=spent) for day in dates}
        context = JobContext(
            warehouse=self.warehouse,
            settings=self.settings,
            run_id=self.run_id,
            stage=stage,
            now=self.clock(),
            log=lambda line: self._log(f"{stage} job: {line}"[:1000]),
            log_lines=lambda lines: self._log_many([f"{stage} job: {line}"[:1000] for line in lines]),
            still_wanted=lambda: self._still_wanted(stage, dates),
            gate_pct=self.request.gate_pct(processor.stage.gate_min_upstream_pct),
            skip_gates=self.request.skip_gates,
        )

        def attempt() -> BatchResult:
            # Right before each write: LeaseLost stops the run, another run may hold these dates now.
            self.ledger.check_lease(self.run_id, stage, dates)
            return processor.run(dates, context)

        try:
            result, attempts = self._retried(attempt, what=f"{stage} {dates[0]}..{dates[-1]}")
        except (LeaseLost, RunCancelled):
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
            attempts = getattr(exc, "attempts", 1)
            if isinstance(exc, JobTimedOut) and len(dates) > 1:
                # Halves of a hung batch would each hang as long: its dates are marked together.
                self._log(f"{stage}: a batch of {len(dates)} timed out; its dates fail together", "warning")
            elif classify(exc) == PERMANENT and len(dates) > 1 and self.monotonic() >= deadline:
                self._log(
                    f"{stage}: permanent failure in a batch of {len(dates)} after its time budget "
                    f"({budget_s:g} s) was spent; its dates fail together",
                    "warning",
                )
            elif classify(exc) == PERMANENT and len(dates) > 1:
                self._log(f"{stage}: permanent failure in a batch of {len(dates)}; splitting it", "warning")
                middle = len(dates) // 2
                results = self._attempt(stage, processor, dates[:middle], deadline) | self._attempt(
                    stage, processor, dates[middle:], deadline
                )
                for outcome in results.values():
                    outcome.attempts += attempts
                return results
            return {day: _Outcome(attempts=attempts, error=exc) for day in dates}
        crash_point(AFTER_REPLACE)
        return {
            day: _Outcome(
                attempts=attempts,
                error=JobFailed("the job reported this date failed", result.failed[day])
                if day in result.failed
                else None,
            )
            for day in dates
        }

    def _clean(self, stage: str, dates: list[dt.date]) -> tuple[dict[dt.date, int], Exception | None]:
        """Delete what the job left stale on its dates (one transaction): (rows deleted per date, the
        error that stopped the clean-up, if one did)."""
        try:
            deleted, _ = self._retried(
                lambda: stale.delete_stale(
                    self.warehouse, self.settings, min(dates), max(dates), stages=[stage], dates=dates
                ),
                what=f"{stage} stale rows",
            )
        except Exception as exc:  # noqa: BLE001 - its dates fail as unclean, the run goes on
            self._log(f"{stage}: deleting stale rows failed ({_one_line(exc)[:200]})", "error")
            return {}, exc
        per_date = deleted.groupby("game_date")["rows"].sum().to_dict() if len(deleted) else {}
        if per_date:
            self._log(
                f"{stage}: deleted {sum(per_date.values())} stale rows the job left on {len(per_date)} dates"
            )
        return {day: int(rows) for day, rows in per_date.items()}, None

    def _stale_left(self, stage: str, dates: list[dt.date]) -> dict[dt.date, dict[str, int]]:
        """Stale rows of the stage still on the dates after its work and clean-up, by category: measured
        again, whatever the clean-up said (one retried statement)."""
        counts, _ = self._retried(
            lambda: stale.stale_counts(self.warehouse, self.settings, min(dates), max(dates), stages=[stage]),
            what=f"{stage} stale rows left",
        )
        left: dict[dt.date, dict[str, int]] = {}
        wanted = set(dates)
        for day, category, rows in zip(counts["game_date"], counts["category"], counts["rows"]):
            if day in wanted:
                left.setdefault(day, {})[category] = int(rows)
        if left:
            total = sum(sum(by_category.values()) for by_category in left.values())
            self._log(f"{stage}: {total} stale rows left on {len(left)} dates after the work", "error")
        return left

    def _labels(self, stage: str) -> dict[str, str]:
        return {"backfill_run": self.run_id, "stage": stage}

    def _retried(self, fn: Callable, what: str = "measure"):
        """Call ``fn`` under the retry policy; returns (result, attempts). Failures carry ``attempts``."""
        attempts = 0

        def attempt():
            nonlocal attempts
            attempts += 1
            return fn()

        def on_retry(number: int, error: BaseException, delay: float) -> None:
            self._log(
                f"{what}: attempt {number} failed ({_gist(error)}); retrying in {delay:.1f}s", "warning"
            )

        try:
            result = self.policy.retrying(on_retry)(attempt)
        except Exception as exc:
            exc.attempts = attempts  # type: ignore[attr-defined]  # read back by _attempt
            raise
        return result, attempts


def execute_run(
    run_id: str, warehouse: Warehouse, settings: Settings, ledger: Ledger, **options
) -> RunResult:
    """Run (or resume) a recorded run in this process until it ends."""
    who = ledger.get_run(run_id).created_by
    with warehouse.labels(**job_labels("run", who)):
        return Runner(warehouse, settings, ledger, run_id, **options).execute()


def _unclean(clean_error: Exception | None, left: dict[str, int]) -> dict:
    """A complete date's fields when stale rows of its stage were left on it, or its clean-up failed:
    failed, with a class of its own (SPEC 9.3)."""
    parts = []
    if clean_error is not None:
        parts.append(f"deleting its stale rows failed ({_one_line(clean_error)[:300]})")
    if left:
        categories = ", ".join(f"{category} {rows}" for category, rows in sorted(left.items()))
        parts.append(f"{sum(left.values())} stale rows left after the work ({categories})")
    return {
        "status": "failed",
        "error_class": UNCLEAN,
        "error_message": "complete, but " + "; ".join(parts),
    }


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _coverage_value(row: dict) -> float | None:
    """The coverage recorded before/after: expected coverage, or player-game coverage on all-bootstrap dates."""
    for column in ("expected_coverage_pct", "player_game_coverage_pct"):
        value = row[column]
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def _pct_text(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _gist(exc: BaseException) -> str:
    """An error in one short line: its kind and first line and, for a job, its last output line
    (where a job's own error usually is)."""
    lines = [line.strip() for line in _message(exc).split(" | ") if line.strip()]
    if len(lines) > 2:
        lines = [lines[0], "...", lines[-1]]
    return " | ".join(line[:200] for line in lines)


def _message(exc: BaseException) -> str:
    """An item's error message: the error's kind and first line (a job's: how it ended, its output)."""
    text = exc.describe() if isinstance(exc, JobFailed) else f"{type(exc).__name__}: {exc}"
    return " | ".join(line for line in text.splitlines() if line.strip())[:500]


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
