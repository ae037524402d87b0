"""Rerun with upstream: a date blocked by its gate is redone with the upstream stage first.

A blocked date waits for its upstream stage (SPEC 3): rerun alone it meets the same gate again.
Redoing the upstream stage, then the stage, in one run is what an operator means; the CLI, the
Runs page and the Coverage drill-down all ask this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.ledger import Ledger, Run
from backfill.pipeline import Pipeline
from backfill.request import BackfillRequest


def upstream_stages(pipeline: Pipeline, stages: Iterable[str]) -> set[str]:
    """The backfillable upstream stages of ``stages`` (the reference table is never backfilled)."""
    names = set(pipeline.stage_names)
    return {
        upstream.name
        for stage in stages
        if stage in names
        for upstream in [pipeline.upstream(pipeline.stage(stage))]
        if upstream.name in names
    }


def blocked_items(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Items that wait for their upstream (the only ones a rerun with upstream redoes): blocked by a
    gate, or failed for want of their upstream on the date."""
    return [
        item
        for item in items
        if item["status"] == "blocked"
        or (item["status"] == "failed" and item.get("error_class") == "upstream")
    ]


def waiting_for(run: Run, items: Iterable[Mapping[str, Any]], pipeline: Pipeline) -> set[str]:
    """Upstream stages a run's blocked dates wait for that the run itself did not include."""
    blocked = {item["stage"] for item in blocked_items(items)}
    return upstream_stages(pipeline, blocked) - set(run.params.get("stages", []))


def stages_with_upstream(pipeline: Pipeline, stages: Iterable[str]) -> tuple[str, ...]:
    """The stages, their upstream stages and what depends on those, in dependency order."""
    chosen = set(stages)
    return pipeline.downstream_of(chosen | upstream_stages(pipeline, chosen))


def run_request(ledger: Ledger, run_id: str, pipeline: Pipeline) -> BackfillRequest:
    """A request redoing a run's blocked dates with their upstream stage first (same settings)."""
    run = ledger.get_run(run_id)
    blocked = blocked_items(ledger.items(run_id))
    if not blocked:
        raise BadInput(f"run {run_id} has no blocked dates to rerun with their upstream")
    days = {dt.date.fromisoformat(item["game_date"]) for item in blocked}
    stages = stages_with_upstream(pipeline, {item["stage"] for item in blocked})
    return BackfillRequest.from_params(run.params).with_dates(days, stages)


def date_request(settings: Settings, day: dt.date, stage: str) -> BackfillRequest:
    """A request redoing one date's stage with its upstream stage first (the pipeline's own gate)."""
    stages = stages_with_upstream(settings.pipeline, [stage])
    if len(stages) < 2:
        raise BadInput(f"{settings.pipeline.label(stage)} has no upstream stage to backfill first")
    return BackfillRequest.build(settings, dates=[day], stages=list(stages))
