"""The backfill runner: gated, atomic, set-based, retried and resumable.

A run works through its unfinished items in batches of dates. For each batch and stage (MLFS before
predictions) it issues three statements: measure the batch (coverage before, and the MLFS gate),
replace the runnable dates in one transaction, measure again (verification, rows written). A
permanent failure of a batch is isolated by splitting it in halves, so one bad date never blocks the
others; transient failures are retried by the policy of :mod:`backfill.retry`.

Every outcome is checkpointed in the ledger before the next batch starts, and the run record is
re-read before each batch so that a cancel takes effect there. Items finished are never redone, so a
resume after a crash does only what is left; a replace is idempotent, so redoing a batch whose
commit the ledger missed is harmless.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backfill import coverage
from backfill.config import Settings
from backfill.crashpoints import AFTER_REPLACE, BEFORE_REPLACE, crash_point
from backfill.faults import PERMANENT, classify
from backfill.gates import mlfs_gate
from backfill.ledger import ITEM_OPEN, LeaseConflict, Ledger, now_utc
from backfill.processors import replace_params, replace_script
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse

HEARTBEAT_EVERY_S = 2.0

Measurement = dict[tuple[dt.date, str], dict]
"""Daily coverage rows of a batch, by (date, stage)."""


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status and item counts by status."""

    run_id: str
    status: str
    counts: dict[str, int]
    statements: int
    message: str | None = None

    @property
    def exit_code(self) -> int:
        """0 when every date is done (or had no games), 1 otherwise."""
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
) -> str:
    """Record a queued run for a request; nothing is written to the warehouse yet."""
    run_id = ledger.create_run(
        params=request.to_params(),
        items=request.items(),
        created_by=who,
        warehouse=warehouse.describe(),
        parent_run_id=parent_run_id,
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
        self.ledger = ledger
        self.run_id = run_id
        self.clock = clock
        self.monotonic = monotonic
        self.echo = echo
        self.request = BackfillRequest.from_params(ledger.get_run(run_id).params)
        self.policy = self.request.retry_policy(sleep=sleep)
        self._statements_at_start = warehouse.statements_issued
        self._statements_recorded = ledger.get_run(run_id).statements  # a resume keeps counting
        self._stop_heartbeat = threading.Event()

    # -- the run ----------------------------------------------------------------------------

    def execute(self) -> RunResult:
        """Do every unfinished item of the run; returns how it ended."""
        open_items = self.ledger.items(self.run_id, ITEM_OPEN)
        self.ledger.start_run(self.run_id)
        try:
            self.ledger.acquire_leases(self.run_id, [(i["stage"], _date(i["game_date"])) for i in open_items])
        except LeaseConflict as conflict:
            for stage in self.request.stages:
                dates = [_date(i["game_date"]) for i in open_items if i["stage"] == stage]
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
        self._log(f"started: {len(open_items)} open items on {self.warehouse.describe()}")
        heartbeat = threading.Thread(target=self._heartbeat, name=f"heartbeat-{self.run_id}", daemon=True)
        heartbeat.start()
        try:
            dates = sorted({_date(item["game_date"]) for item in open_items})
            for batch in _chunks(dates, self.request.batch_size):
                if self.ledger.cancel_requested(self.run_id):
                    return self._cancel()
                # Every job of the run carries its id (BigQuery: a job label), so its cost adds up.
                with self.warehouse.session(), self.warehouse.labels(backfill_run=self.run_id):
                    self._run_batch(batch)
            self._finish(self._final_status())
        except BaseException as exc:
            self._finish("failed", f"stopped by {type(exc).__name__}: {exc}")
            raise
        finally:
            self._stop_heartbeat.set()
        return self._result()

    def _log(self, message: str, level: str = "info") -> None:
        """A log line in the ledger (the console shows the latest), echoed to the caller if asked."""
        self.ledger.log(self.run_id, message, level)
        if self.echo is not None:
            self.echo(f"{self.clock():%H:%M:%S} {level:<7} {message}")

    def _heartbeat(self) -> None:
        while not self._stop_heartbeat.wait(HEARTBEAT_EVERY_S):
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

    def _finish(self, status: str, message: str | None = None) -> None:
        counts = self.ledger.item_counts(self.run_id)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self.ledger.heartbeat(self.run_id, self._statements())
        self.ledger.finish_run(self.run_id, status, message or summary)
        self._log(f"{status}: {summary}; {self._statements()} warehouse statements")

    def _cancel(self) -> RunResult:
        for stage in self.request.stages:
            open_dates = [
                _date(i["game_date"])
                for i in self.ledger.items(self.run_id, ITEM_OPEN)
                if i["stage"] == stage
            ]
            self.ledger.update_items(
                self.run_id, stage, open_dates, status="cancelled", error_class="cancelled",
                error_message="cancelled before this batch started",
            )  # fmt: skip
        self._finish("cancelled")
        return self._result()

    def _result(self) -> RunResult:
        run = self.ledger.get_run(self.run_id)
        return RunResult(
            self.run_id, run.status, self.ledger.item_counts(self.run_id), run.statements, run.message
        )

    # -- one stage of one batch -------------------------------------------------------------

    def _run_batch(self, batch: list[dt.date]) -> None:
        """Each stage of a batch in dependency order; one measurement serves as the previous stage's
        verification and the next stage's "before" (and gate), so a batch costs 2 statements per
        stage plus one."""
        open_now = {(i["stage"], i["game_date"]) for i in self.ledger.items(self.run_id, ITEM_OPEN)}
        measured: Measurement | None = None
        for stage in self.request.stages:
            dates = [day for day in batch if (stage, day.isoformat()) in open_now]
            if dates:
                measured = self._run_stage(stage, dates, measured)

    def _run_stage(self, stage: str, dates: list[dt.date], before: Measurement | None) -> Measurement:
        """Gate, replace and verify one stage's dates; returns the measurement after it."""
        started = self.monotonic()
        self.ledger.update_items(
            self.run_id, stage, dates, status="running", started_at=self.clock().isoformat()
        )
        if before is None or not all((day, stage) in before for day in dates):
            before = self._measure(dates)
        outcomes: dict[dt.date, dict] = {}
        runnable = []
        for day in dates:
            row = before[(day, stage)]
            now_pct = _coverage_value(row)
            if row["players_total"] == 0:
                outcomes[day] = {"status": "skipped", "error_message": "no games on this date"}
            elif (
                stage == "predictions"
                and not (
                    gate := mlfs_gate(
                        100.0 * row["upstream_covered"] / row["players_total"],
                        self.request.min_mlfs_coverage_pct,
                        self.request.skip_mlfs_check,
                    )
                ).passed
            ):
                outcomes[day] = {"status": "blocked", "error_class": "blocked", "error_message": gate.reason}
                self._log(f"{stage} {day}: blocked, {gate.reason}", "warning")
            else:
                runnable.append(day)
            outcomes[day] = outcomes.get(day, {}) | {"coverage_before": now_pct}
        results = self._replace(stage, runnable) if runnable else {}
        done = [day for day in runnable if results[day].error is None]
        # Nothing written: the measurement before still holds.
        after = self._measure(dates) if done else before
        elapsed = self.monotonic() - started
        for day in runnable:
            outcome = results[day]
            fields = {
                "attempts": outcome.attempts,
                "finished_at": self.clock().isoformat(),
                "duration_s": round(elapsed, 3),
            }
            if outcome.error is None:
                row = after[(day, stage)]
                fields |= {
                    "status": "done",
                    "rows_written": int(row["table_rows"]),
                    "coverage_after": _coverage_value(row),
                    "error_class": None,
                    "error_message": None,
                }
            else:
                fields |= {
                    "status": "failed",
                    "error_class": classify(outcome.error),
                    "error_message": f"{type(outcome.error).__name__}: {outcome.error}".splitlines()[0][:500],
                }
            outcomes[day] |= fields
        for day in dates:
            outcomes[day].setdefault("finished_at", self.clock().isoformat())
        self.ledger.record_items(self.run_id, stage, outcomes)
        self.ledger.heartbeat(self.run_id, self._statements())
        failed = [day for day in runnable if results[day].error is not None]
        self._log(
            f"{stage} {dates[0]}..{dates[-1]}: {len(done)} done, {len(failed)} failed, "
            f"{len(dates) - len(runnable)} blocked or skipped",
            "warning" if failed else "info",
        )
        return after

    def _measure(self, dates: list[dt.date]) -> Measurement:
        """Coverage of the batch's dates by (date, stage): one retried statement."""
        daily, _ = self._retried(
            lambda: coverage.daily_coverage(self.warehouse, self.settings, min(dates), max(dates))
        )
        return {(row["game_date"], row["stage"]): row for row in daily.to_dict("records")}

    def _replace(self, stage: str, dates: list[dt.date]) -> dict[dt.date, _Outcome]:
        """Replace the dates' rows in one transaction; split the batch on a permanent failure."""
        crash_point(BEFORE_REPLACE)
        self.ledger.check_lease(self.run_id, stage, dates)  # LeaseLost: stop, another run may hold them
        params = replace_params(stage, dates, self.settings, self.clock())
        try:
            _, attempts = self._retried(
                lambda: self.warehouse.execute(replace_script(stage), params, labels=self._labels(stage)),
                what=f"{stage} {dates[0]}..{dates[-1]}",
            )
        except Exception as exc:  # noqa: BLE001 - every failure is recorded, the run goes on
            attempts = getattr(exc, "attempts", 1)
            if classify(exc) == PERMANENT and len(dates) > 1:
                self._log(
                    f"{stage}: permanent failure in a batch of {len(dates)}; splitting it",
                    "warning",
                )
                middle = len(dates) // 2
                results = self._replace(stage, dates[:middle]) | self._replace(stage, dates[middle:])
                for outcome in results.values():
                    outcome.attempts += attempts
                return results
            return {day: _Outcome(attempts=attempts, error=exc) for day in dates}
        crash_point(AFTER_REPLACE)
        return {day: _Outcome(attempts=attempts) for day in dates}

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
                f"{what}: attempt {number} failed ({type(error).__name__}: {str(error)[:200]}); "
                f"retrying in {delay:.1f}s",
                "warning",
            )

        try:
            result = self.policy.retrying(on_retry)(attempt)
        except Exception as exc:
            exc.attempts = attempts
            raise
        return result, attempts


def execute_run(
    run_id: str, warehouse: Warehouse, settings: Settings, ledger: Ledger, **options
) -> RunResult:
    """Run (or resume) a recorded run in this process until it ends."""
    return Runner(warehouse, settings, ledger, run_id, **options).execute()


def _coverage_value(row: dict) -> float | None:
    """The coverage recorded before/after: expected coverage, or player-game coverage on all-bootstrap dates."""
    for column in ("expected_coverage_pct", "player_game_coverage_pct"):
        value = row[column]
        if value is not None and not (isinstance(value, float) and math.isnan(value)):
            return float(value)
    return None


def _chunks(items: list, size: int) -> list[list]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)
