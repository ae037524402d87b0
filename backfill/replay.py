"""Replayable runs (SPEC 7.4): what a run records about where and how it writes, and the settings
a resume or rerun rebuilds from that record instead of from the current environment.

A run records the pipeline file's path and content hash, the warehouse URL and the dataset names.
A resume or rerun uses them, never ``BACKFILL_WAREHOUSE`` or the datasets of the moment; if the
pipeline file changed since, it refuses with a one-line reason.
"""

from __future__ import annotations

from typing import Any

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.pipeline import load_pipeline


def run_context(settings: Settings, warehouse: Any) -> dict[str, Any]:
    """What a run records besides its request: everything else that decides what it writes."""
    return {
        "pipeline_path": settings.pipeline.path,
        "pipeline_hash": settings.pipeline.content_hash,
        "warehouse": warehouse.url,
        "datasets": dict(settings.datasets),
        "ok_pct": settings.ok_pct,
    }


def settings_for_run(settings: Settings, params: dict[str, Any], run_id: str) -> Settings:
    """The settings a recorded run must continue with; BadInput if its pipeline file changed."""
    context = params.get("context")
    if not context:  # a run recorded before runs were replayable: only the warehouse was kept
        return settings
    pipeline = load_pipeline(context["pipeline_path"], environ={})
    if pipeline.content_hash != context["pipeline_hash"]:
        raise BadInput(
            f"run {run_id} ran with pipeline file {context['pipeline_path']} as it was then; the file "
            "has changed since, so it cannot be resumed or rerun as recorded (start a new run)"
        )
    datasets = context.get("datasets", {})
    return settings.replace(
        warehouse=context["warehouse"],
        pipeline=pipeline,
        ok_pct=context.get("ok_pct", settings.ok_pct),
        **{f"{role}_dataset": name for role, name in datasets.items()},
    )
