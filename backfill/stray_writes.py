"""Writes a job made outside its dates (issue 21): the console verifies the dates it gave a job, and
this notices when the job changed others.

Around a stage's jobs in a window, the stage's table is fingerprinted per date over the seasons of
the window (rows and an order-free hash of their keys, as coverage fingerprints them, or the
warehouse's own partition times where it keeps them); a date outside the jobs' dates whose
fingerprint changed was written by someone while the jobs ran. What this cannot see: a write to
another season, to another table, or one that leaves a date's rows and keys as they were (a changed
value in a non-key column where the warehouse keeps no partition times), and a write by another
process at the same moment, which it reports as if the job had made it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from backfill.coverage_snapshot import fingerprint_sql
from backfill.pipeline import Pipeline
from backfill.seasons import season_of, season_start
from backfill.warehouse import Warehouse

Fingerprint = dict[dt.date, object]


def span(dates: Iterable[dt.date]) -> tuple[dt.date, dt.date]:
    """The seasons the dates fall in, first day to last."""
    days = list(dates)
    return season_start(min(days)), dt.date(season_of(max(days)) + 1, 7, 31)


def fingerprint(
    warehouse: Warehouse, pipeline: Pipeline, stage: str, first: dt.date, last: dt.date
) -> Fingerprint:
    """Per date of [first, last]: what the stage's table holds, in a form that changes with a write."""
    spec = pipeline.stage(stage)
    times = warehouse.partition_times([spec], first, last)
    if times is not None:
        return {day: moment for (source, day), moment in times.items() if source == stage}
    rows = warehouse.query(fingerprint_sql(pipeline), {"start": first, "end": last, "history_start": last})
    columns = (rows[name].tolist() for name in ("source", "game_date", "row_count", "key_hash"))
    return {
        day: (int(count), int(key_hash))
        for source, day, count, key_hash in zip(*columns)
        if source == stage and first <= day <= last
    }


def outside(before: Fingerprint, after: Fingerprint, given: Iterable[dt.date]) -> list[dt.date]:
    """Dates not among ``given`` whose fingerprint changed, in order."""
    mine = set(given)
    return sorted(
        day for day in set(before) | set(after) if day not in mine and before.get(day) != after.get(day)
    )
