"""Cost before work: what a backfill or a coverage refresh would process, asked of the warehouse.

Where the warehouse can tell without running anything (``Warehouse.SUPPORTS_DRY_RUN``: BigQuery,
by dry-run jobs, which are free), every statement the work would send is estimated: for a
backfill, per batch of dates the measurement, then for each stage its replacement and the
measurement after it, as :mod:`backfill.runner` sends them; for a coverage refresh, the daily
counts and (by month) the distinct-player counts. Elsewhere (DuckDB) there is nothing to pay and
the functions return None.

A backfill's estimate is an upper bound: it counts every date as replaced, while the runner
skips dates without games and dates the MLFS gate blocks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from backfill import batching, coverage
from backfill.config import Settings
from backfill.processors import processor_for
from backfill.processors.sql import SqlProcessor
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse

Statement = tuple[str, dict]
"""A statement template and its parameters."""


@dataclass(frozen=True)
class CostEstimate:
    """Bytes a piece of work would process, from dry runs of each of its statements."""

    bytes_processed: int
    statements: int
    largest: int
    """Bytes of the largest single request (the guard applies to each job alone)."""
    guard: int
    """``maximum_bytes_billed`` (0: no guard)."""
    warehouse: str

    @property
    def over_guard(self) -> bool:
        """Whether some request would be refused by the ``maximum_bytes_billed`` guard."""
        return bool(self.guard) and self.largest > self.guard

    def text(self) -> str:
        """One line for people: ``BigQuery estimate: 1.2 GiB processed by 5 statements; dry run on ...``."""
        line = (
            f"BigQuery estimate: {human_bytes(self.bytes_processed)} processed by "
            f"{self.statements} statement{'s' if self.statements != 1 else ''}; dry run on {self.warehouse}"
        )
        if self.over_guard:
            line += (
                f"; one of them ({human_bytes(self.largest)}) is over the maximum_bytes_billed guard "
                f"of {human_bytes(self.guard)} and would be refused"
            )
        return line


def backfill_statements(settings: Settings, request: BackfillRequest, now: dt.datetime) -> list[Statement]:
    """Every statement a backfill of the request would send, in order (all dates replaced)."""
    statements: list[Statement] = []
    dates = sorted(request.dates)
    pipeline = settings.pipeline
    size = batching.window_size(request, settings)[0]
    for first in range(0, len(dates), size):
        batch = dates[first : first + size]
        measure = (coverage.daily_sql(pipeline), coverage._range_params(settings, batch[0], batch[-1]))
        statements.append(measure)
        for stage in request.stages:
            processor = processor_for(pipeline.stage(stage), pipeline)
            if isinstance(processor, SqlProcessor):  # a job's own statements are not ours to estimate
                statements.append((processor.script(), processor.params(batch, now)))
            statements.append(measure)
    return statements


def coverage_statements(
    settings: Settings, start: dt.date, end: dt.date, by: str = "month"
) -> list[Statement]:
    """The statements measuring coverage of a range sends (``python -m backfill coverage``)."""
    statements = [(coverage.daily_sql(settings.pipeline), coverage._range_params(settings, start, end))]
    if by == "month":
        statements.append((coverage.monthly_players_sql(settings.pipeline), {"start": start, "end": end}))
    return statements


def estimate(warehouse: Warehouse, statements: list[Statement]) -> CostEstimate | None:
    """Dry-run each statement; None where the warehouse cannot estimate (nothing is sent then)."""
    if not warehouse.SUPPORTS_DRY_RUN:
        return None
    sizes = [warehouse.estimate_bytes(template, params) or 0 for template, params in statements]
    return CostEstimate(
        bytes_processed=sum(sizes),
        statements=len(sizes),
        largest=max(sizes, default=0),
        guard=warehouse.settings.maximum_bytes_billed,
        warehouse=warehouse.describe(),
    )


def backfill_estimate(
    warehouse: Warehouse, settings: Settings, request: BackfillRequest, now: dt.datetime | None = None
) -> CostEstimate | None:
    """What a backfill of the request would process (an upper bound), or None on DuckDB."""
    now = now or dt.datetime.now(dt.UTC)
    return estimate(warehouse, backfill_statements(settings, request, now))


def coverage_estimate(
    warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date, by: str = "month"
) -> CostEstimate | None:
    """What measuring the coverage of a range would process, or None on DuckDB."""
    return estimate(warehouse, coverage_statements(settings, start, end, by))


@dataclass(frozen=True)
class EstimateNote:
    """One line about what some work would cost, for people; ``warn`` when it would trip the guard."""

    text: str
    warn: bool = False


def estimate_note(compute: Callable[[], CostEstimate | None]) -> EstimateNote | None:
    """The estimate ``compute`` makes, as a line for people; None where there is nothing to pay.

    An estimate is a courtesy: when it cannot be made, the line says why, and the work goes on.
    """
    try:
        estimate = compute()
    except Exception as exc:  # noqa: BLE001 - the work itself reports real failures
        reason = " ".join(str(exc).split())[:200]
        return EstimateNote(f"no BigQuery estimate ({type(exc).__name__}: {reason})")
    return None if estimate is None else EstimateNote(estimate.text(), estimate.over_guard)


def human_bytes(count: int) -> str:
    """Bytes in binary units with one decimal (BigQuery bills by the TiB): ``1.2 GiB``."""
    if count < 1024:
        return f"{count} B"
    value = count / 1024
    for unit in ("KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
