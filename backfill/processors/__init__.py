"""Stage processors: set-based SQL that recomputes whole dates of a stage's table.

Each stage has one GoogleSQL statement that computes every row of a set of dates with window
functions over the look-back range. :func:`replace_script` wraps it into one transaction that deletes
the dates' rows and inserts the new ones, so a date is either as before or fully replaced, and no
stale row survives.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from backfill.config import Settings
from backfill.processors import mlfs, predictions
from backfill.seasons import season_start
from backfill.validate import STAGES

STAGE_MODULES = {"mlfs": mlfs, "predictions": predictions}
"""Processor module of each stage; each has ``TABLE``, ``ALIAS``, ``INSERT`` and ``params()``."""


def replace_script(stage: str) -> str:
    """One transaction: delete the dates' rows, insert their recomputed rows."""
    module = STAGE_MODULES[stage]
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM {{{module.ALIAS}}} WHERE game_date IN (SELECT d FROM UNNEST(@dates) AS d);\n"
        f"{module.INSERT};\n"
        "COMMIT TRANSACTION;"
    )


def replace_params(stage: str, dates: list[dt.date], settings: Settings, now: dt.datetime) -> dict[str, Any]:
    """Parameters of :func:`replace_script` for a set of dates, computed at ``now``."""
    ordered = sorted(set(dates))
    base = {
        "dates": ordered,
        "history_start": season_start(ordered[0]),
        "end": ordered[-1],
        "processed_at": now,
    }
    return base | STAGE_MODULES[stage].params(settings)


__all__ = ["STAGES", "STAGE_MODULES", "replace_params", "replace_script"]
