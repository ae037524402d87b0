"""How many dates a run takes per window when the request does not say: sized by the work.

A window is what the runner measures, gates, processes and verifies at once, and between windows it
checkpoints, honours a cancel and closes an embedded warehouse file so readers get in. Smaller
windows cost a fixed price each (two coverage measurements and a statement per stage), so the default
is the largest window the work allows:

- a set-based ``sql`` processor reads its look-back from the season's start whatever the batch, so a
  season of dates costs about what one date costs: it takes a season per window;
- a ``command`` or ``python`` job keeps its own ``batch_size``; a window holds ``max_parallel`` of its
  batches, so they run side by side (31 dates when the job gives no size);
- the warehouse may bound it (:meth:`backfill.warehouse.Warehouse.batch_dates_bound`: on BigQuery,
  the bytes a batch would process against ``maximum_bytes_billed``).

A window sized by the work also ends where a season does (:func:`windows`). When every stage of a
run is set-based, whole seasons then share a window while their reference rows stay within
:data:`WINDOW_ROWS`: a window's fixed price (measurements, a statement per stage, a ledger checkpoint)
is paid once for them, and its statements read no more than the seasons' own rows. An explicit size
(``--batch-size``, the ``batch_size`` setting) always wins, and its windows are cut by count alone.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from backfill.seasons import season_of

if TYPE_CHECKING:
    from backfill.config import Settings
    from backfill.processors import Processor
    from backfill.request import BackfillRequest
    from backfill.warehouse import Warehouse

SEASON_DATES = 366
"""A set-based processor's window: every date of a season (and of a leap year) at once."""

WINDOW_ROWS = 300_000
"""Whole seasons of a set-based run share a window up to this many reference rows (player-games):
about ten NBA seasons, a second and a half of DuckDB work on a 2-core machine, so a cancel or a reader
waits about that long at most. A season with more rows has a window of its own."""

JOB_DATES = 31
"""A job's window when it gives no ``batch_size``: the dates it is handed in one call."""


def processor_window(processor: Processor) -> int:
    """The dates one window should hold for this processor's work."""
    if processor.batch_size is not None:
        return processor.batch_size * max(1, processor.max_parallel)
    return SEASON_DATES if processor.set_based else JOB_DATES


def window_size(
    request: BackfillRequest, settings: Settings, warehouse: Warehouse | None = None
) -> tuple[int, str]:
    """(dates per window, why): the request's size if it gives one, else the setting's, else sized by
    the work of its stages, bounded by what the warehouse allows for a batch."""
    if request.batch_size is not None:
        return request.batch_size, "asked"
    if settings.batch_size is not None:
        return settings.batch_size, "setting"
    from backfill.processors import processor_for

    pipeline = settings.pipeline
    processors = [processor_for(pipeline.stage(name), pipeline) for name in request.stages]
    size = max((processor_window(p) for p in processors), default=JOB_DATES)
    size = min(size, max(1, len(request.dates)))
    why = "sized by the work"
    if warehouse is not None:
        dates = sorted(request.dates)
        for processor in processors:
            bound = warehouse.batch_dates_bound(processor, dates[:size], _now())
            if bound is not None and bound < size:
                size, why = max(1, bound), "sized by the work, bounded by the warehouse"
    return size, why


def windows(dates: list[dt.date], size: int, by_season: bool) -> list[list[dt.date]]:
    """The run's (sorted) dates in windows of at most ``size``; with ``by_season`` a window also ends
    at the end of a season. A set-based statement reads its look-back from the start of the season of
    its window's first date, so a window of 366 dates straddling two seasons read the earlier
    season's days before its first date for nothing, and windows drifted further into their seasons
    the more seasons a run held (issue 13)."""
    found: list[list[dt.date]] = []
    for day in dates:
        if not found or len(found[-1]) >= size or (by_season and season_of(day) != season_of(found[-1][-1])):
            found.append([])
        found[-1].append(day)
    return found


def packed(
    windows: list[list[dt.date]], rows: dict[dt.date, int], max_rows: int = WINDOW_ROWS
) -> list[list[dt.date]]:
    """Consecutive :func:`windows` merged while their reference rows (``rows``, per date) stay within
    ``max_rows``: whole seasons share a window, and a window still ends where a season does."""
    found: list[list[dt.date]] = []
    found_rows = 0
    for window in windows:
        weight = sum(rows.get(day, 0) for day in window)
        if found and found_rows + weight <= max_rows:
            found[-1].extend(window)
            found_rows += weight
        else:
            found.append(list(window))
            found_rows = weight
    return found


def packs_seasons(processors: list[Processor]) -> bool:
    """Whether whole seasons may share a window: every stage is set-based and sized by the work (a
    job's window stays what its ``batch_size`` and ``max_parallel`` make it, so its dates are
    checkpointed as often as before)."""
    return bool(processors) and all(p.set_based and p.batch_size is None for p in processors)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
