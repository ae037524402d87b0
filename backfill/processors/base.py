"""What every processor shares: the context of a batch, its result, and a job's failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from backfill.errors import BackfillError, GaveUp

if TYPE_CHECKING:
    from backfill.config import Settings
    from backfill.pipeline import Pipeline, Stage
    from backfill.warehouse import Warehouse


@dataclass(frozen=True)
class JobContext:
    """What a processor may use for one batch: where to write, for which run, and a log."""

    warehouse: Warehouse
    settings: Settings
    run_id: str
    stage: str
    now: dt.datetime
    log: Callable[[str], None] = field(default=lambda line: None, compare=False)
    log_lines: Callable[[list[str]], None] | None = field(default=None, compare=False)
    """Several lines at once (one ledger transaction); by default, :attr:`log` line by line."""
    still_wanted: Callable[[], None] = field(default=lambda: None, compare=False)
    """Asked now and then while a job runs: raises (LeaseLost, RunCancelled) when the run no longer
    wants it, and the job's tree is killed at once."""
    gate_pct: float | None = None
    """The gate this run applies to the stage (None: ungated), for jobs that check it themselves."""
    skip_gates: bool = False

    def log_batch(self, lines: list[str]) -> None:
        """Log several lines, in one transaction where the run offers it."""
        if self.log_lines is not None:
            self.log_lines(lines)
        else:
            for line in lines:
                self.log(line)

    @property
    def warehouse_url(self) -> str:
        return self.warehouse.url


@dataclass
class BatchResult:
    """How an attempt at a batch ended, by the processor's own account (verification follows)."""

    failed: dict[dt.date, str] = field(default_factory=dict)
    """Dates the job said it failed, with its error message."""


class JobFailed(BackfillError):
    """A job's attempt failed as a whole. ``str()`` is the last lines of its output, which is what
    :mod:`backfill.faults` classifies; ``how`` says how it ended (exit code, timeout, signal)."""

    def __init__(self, how: str, output_tail: str):
        super().__init__(output_tail or how)
        self.how = how

    def describe(self) -> str:
        return f"{self.how}: {self}" if str(self) != self.how else self.how


class JobTimedOut(JobFailed, GaveUp):
    """A job killed at its ``timeout_s``: its batch is marked failed, not retried or split."""


class Processor:
    """Backfills one stage for a batch of dates; subclasses implement :meth:`run`."""

    plan_action = "replace"
    """What the dry run says the processor will do to a date."""

    holds_warehouse = True
    """Whether the work runs through this process's warehouse connection (False: another process
    writes, so the runner releases an embedded warehouse file while it works)."""

    set_based = False
    """Whether a batch is one statement whose cost hardly grows with its dates (the built-in SQL reads
    the season's look-back whatever the batch): :mod:`backfill.batching` gives it large windows."""

    replaces_whole_dates = False
    """Whether a batch deletes every row of its dates in the transaction that writes the new ones (the
    built-in SQL): its stage then holds only what it wrote there, and no stale rows are measured
    after it. A job's writes (MERGE) are measured: a date is done only when clean (SPEC 9.3)."""

    def __init__(self, stage: Stage, pipeline: Pipeline):
        assert stage.processor is not None, f"{stage.name} is the reference stage: it has no processor"
        self.stage = stage
        self.pipeline = pipeline
        self.config = stage.processor

    @property
    def batch_size(self) -> int | None:
        return self.config.batch_size

    @property
    def max_parallel(self) -> int:
        return self.config.max_parallel

    @property
    def clean_stale(self) -> bool:
        return self.config.clean_stale

    def preflight(self, warehouse: Warehouse) -> list[str]:
        """Check before any write; raise BadInput to stop the run, or return warnings for the plan."""
        return []

    def run(self, dates: list[dt.date], context: JobContext) -> BatchResult:
        raise NotImplementedError

    def batch_statement(self, dates: list[dt.date], now: dt.datetime) -> tuple[str, dict[str, Any]] | None:
        """The warehouse statement (template, parameters) a batch of the dates sends, where the
        processor writes through one; None for a job whose statements are its own."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.config.kind}
