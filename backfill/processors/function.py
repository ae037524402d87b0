"""The ``python`` processor: ``module:function`` called in the worker for a batch of dates.

The function gets the batch's dates (``datetime.date``, sorted) and a :class:`JobContext` (the
warehouse adapter, the run id, the stage, a log); it may return ``{date: "error"}`` for dates it
failed, and an exception fails the whole attempt, classified like any other error. The module is
looked up in the pipeline file's folder first.
"""

from __future__ import annotations

import datetime as dt
import importlib
import sys
from typing import Any

from backfill.errors import BadInput
from backfill.processors.base import BatchResult, JobContext, Processor


class FunctionProcessor(Processor):
    """Call the stage's Python function for a batch of dates."""

    plan_action = "call the function"

    def function(self):
        assert self.config.function is not None, "a python processor names its function"
        module_name, name = self.config.function.split(":")
        folder = str(self.pipeline.folder)
        if folder not in sys.path:
            sys.path.insert(0, folder)
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise BadInput(f"{self.stage.name}: cannot import {module_name} ({exc})") from None
        function = getattr(module, name, None)
        if not callable(function):
            raise BadInput(f"{self.stage.name}: {self.config.function} is not a function")
        return function

    def preflight(self, warehouse) -> list[str]:
        self.function()
        return []

    def run(self, dates: list[dt.date], context: JobContext) -> BatchResult:
        failed = self.function()(sorted(dates), context) or {}
        return BatchResult(failed={day: str(error) for day, error in dict(failed).items() if day in dates})

    def describe(self) -> dict[str, Any]:
        return {"kind": "python", "function": self.config.function}
