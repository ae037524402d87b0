"""A gap-dates backfill: on each date, only the stages with a gap there and what depends on them.

"Backfill the gap dates of December" means the stages that are missing, blocked or partial on each
date, and their downstream stages (redone after their upstream, SPEC 7.3); a stage that is fine on
a date is not rebuilt there. A new stage that is empty everywhere is then the only work on dates
where its upstream stages are complete.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from backfill.pipeline import Pipeline


def gap_items(pipeline: Pipeline, gaps: Iterable[tuple[str, dt.date]]) -> list[tuple[str, dt.date]]:
    """The (stage, date) work items of some (stage, date) gaps: each date's gap stages and their
    downstream stages, dates in order and stages in dependency order (as a request's items)."""
    by_date: dict[dt.date, set[str]] = {}
    for stage, day in gaps:
        if stage in pipeline.stage_names:
            by_date.setdefault(day, set()).add(stage)
    return [(stage, day) for day in sorted(by_date) for stage in pipeline.downstream_of(by_date[day])]


__all__ = ["gap_items"]
