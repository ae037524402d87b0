"""The pipeline's stages as the console names them (labels come from the pipeline file)."""

from __future__ import annotations

from backfill.config import Settings


def title(label: str) -> str:
    """A label as a heading: first letter capitalised (``predictions`` -> ``Predictions``, ``MLFS`` stays)."""
    return label[:1].upper() + label[1:]


def labels(settings: Settings) -> dict[str, str]:
    """Heading of every backfillable stage, in dependency order."""
    return {name: title(label) for name, label in settings.pipeline.labels.items()}


def table_labels(settings: Settings) -> dict[str, str]:
    """Heading of every stage by its table's name (stale rows are counted per table)."""
    return {stage.table: title(stage.label) for stage in settings.pipeline.backfillable}


def upstream_label(settings: Settings, stage: str) -> str | None:
    """Heading of a stage's upstream when it is another stage (its coverage is the gate's input)."""
    pipeline = settings.pipeline
    upstream = pipeline.upstream(pipeline.stage(stage))
    return None if upstream is pipeline.reference else title(upstream.label)
