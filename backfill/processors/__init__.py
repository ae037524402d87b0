"""Stage processors: what writes a stage's rows for a batch of dates (SPEC 7.2).

- ``sql``: the console's own set-based replace, one transaction per batch (:mod:`.sql`), with the
  built-in statements of :mod:`.mlfs` and :mod:`.predictions`;
- ``command``: the team's own job, run as a subprocess (:mod:`.command`);
- ``python``: a ``module:function`` called in the worker (:mod:`.function`).

Whatever the processor, the runner verifies its work afterwards: a processor only says whether its
attempt finished, and which dates it failed by its own account.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from backfill.processors import mlfs, predictions
from backfill.processors.base import BatchResult, JobContext, JobFailed, JobTimedOut, Processor

if TYPE_CHECKING:
    from backfill.pipeline import Pipeline, Stage

BUILTINS = {"mlfs": mlfs, "predictions": predictions}
"""The built-in statements a ``sql`` processor may name, by ``builtin``."""


def processor_for(stage: Stage, pipeline: Pipeline) -> Processor:
    """The processor object that backfills a stage."""
    from backfill.processors.command import CommandProcessor
    from backfill.processors.function import FunctionProcessor
    from backfill.processors.sql import SqlProcessor

    kinds = {"sql": SqlProcessor, "command": CommandProcessor, "python": FunctionProcessor}
    assert stage.processor is not None, f"{stage.name} is the reference stage"
    return kinds[stage.processor.kind](stage, pipeline)


__all__ = ["BUILTINS", "BatchResult", "JobContext", "JobFailed", "JobTimedOut", "Processor", "processor_for"]
