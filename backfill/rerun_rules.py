"""Which of a run's items a rerun, a transient-only rerun or a resume would take.

The Runs page offers these actions and the CLI runs them; both ask here, so a button is enabled
exactly when the backend would accept it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from backfill.ledger import RUN_ACTIVE, Run

RERUN_STATUSES = ("failed", "blocked", "cancelled")
"""Item statuses that "rerun failed" picks up: everything a run did not finish."""


def unfinished(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Items a rerun takes: failed, blocked or cancelled."""
    return [item for item in items if item["status"] in RERUN_STATUSES]


def transient_failures(items: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Unfinished items whose error was transient (a timeout, a reset): worth a plain retry."""
    return [item for item in unfinished(items) if item["error_class"] == "transient"]


def may_rerun(run: Run, items: Iterable[Mapping[str, Any]]) -> bool:
    """A run that is over and left something unfinished."""
    return run.status not in RUN_ACTIVE and bool(unfinished(items))


def may_resume(run: Run) -> bool:
    """Only an interrupted run (its process stopped) is resumed."""
    return run.status == "interrupted"
