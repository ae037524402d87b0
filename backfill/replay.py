"""Replayable runs (SPEC 7.4): what a run records about where and how it writes, and the settings
a resume or rerun rebuilds from that record instead of from the current environment.

A run records the pipeline file's path, its meaning (:func:`backfill.pipeline_form.normal_form`:
stages, processors, columns, gates) and content hash, the warehouse URL and the dataset names. A
resume or rerun uses them, never ``BACKFILL_WAREHOUSE`` or the datasets of the moment. If the
pipeline file's meaning changed since, it refuses with a one-line reason naming the change; an edit
that changes nothing a run writes (a comment, a label, the order of the stages) does not block it.
Runs recorded before the meaning was kept (only the hash) are judged by the hash, as they were.
"""

from __future__ import annotations

from typing import Any

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.pipeline import load_pipeline
from backfill.pipeline_form import differences, normal_form

SHOWN_CHANGES = 3
"""Changes named in a refusal; more are counted."""


def run_context(settings: Settings, warehouse: Any) -> dict[str, Any]:
    """What a run records besides its request: everything else that decides what it writes."""
    return {
        "pipeline_path": settings.pipeline.path,
        "pipeline_hash": settings.pipeline.content_hash,
        "pipeline_form": normal_form(settings.pipeline),
        "warehouse": warehouse.url,
        "datasets": dict(settings.datasets),
        "ok_pct": settings.ok_pct,
    }


def replay_changes(params: dict[str, Any]) -> list[str]:
    """What keeps a recorded run from being resumed or rerun as recorded, one line per change of its
    pipeline (``stage predictions: processor argv changed``); empty when nothing does."""
    context = params.get("context")
    if not context:  # a run recorded before runs were replayable: only the warehouse was kept
        return []
    try:
        pipeline = load_pipeline(context["pipeline_path"], environ={})
    except BadInput as exc:
        return [str(exc)]
    if "pipeline_form" not in context:  # a run recorded with the file's hash alone: its bytes decide
        return [] if pipeline.content_hash == context["pipeline_hash"] else ["the file's text changed"]
    return differences(context["pipeline_form"], normal_form(pipeline))


def replay_refusal(params: dict[str, Any], run_id: str) -> str | None:
    """Why a recorded run cannot be resumed or rerun as recorded, in one line; None when it can.
    The console asks before drawing its buttons, the backend before acting (one rule)."""
    changes = replay_changes(params)
    if not changes:
        return None
    named = "; ".join(changes[:SHOWN_CHANGES])
    more = len(changes) - SHOWN_CHANGES
    return (
        f"run {run_id} ran with pipeline file {params['context']['pipeline_path']} as it was then; the "
        f"file has changed since ({named}{f'; {more} more' if more > 0 else ''}), so it cannot be "
        "resumed or rerun as recorded (start a new run)"
    )


def settings_for_run(settings: Settings, params: dict[str, Any], run_id: str) -> Settings:
    """The settings a recorded run must continue with; BadInput if its pipeline changed in meaning."""
    context = params.get("context")
    if not context:  # a run recorded before runs were replayable: only the warehouse was kept
        return settings
    refusal = replay_refusal(params, run_id)
    if refusal:
        raise BadInput(refusal)
    pipeline = load_pipeline(context["pipeline_path"], environ={})
    datasets = context.get("datasets", {})
    return settings.replace(
        warehouse=context["warehouse"],
        pipeline=pipeline,
        ok_pct=context.get("ok_pct", settings.ok_pct),
        **{f"{role}_dataset": name for role, name in datasets.items()},
    )
