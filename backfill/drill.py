"""Which date a drill-down opens on when nobody named one (the console's Coverage page, the CLI).

The incident's first timed-out date (SPEC 1; the demo's first missing date) while it is still a
gap, so a new user lands on the story; otherwise the newest gap date; otherwise the last date.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from backfill.demo import MISSING_PREDICTION_DATES

INCIDENT_DATE = MISSING_PREDICTION_DATES[0]
"""The incident's first timed-out date."""


def default_drill_date(gap_days: Iterable[dt.date], last_day: dt.date) -> dt.date:
    """The date a drill-down opens on without a link: the incident date, the newest gap, or the last day."""
    gaps = sorted(gap_days)
    if INCIDENT_DATE in gaps:
        return INCIDENT_DATE
    return gaps[-1] if gaps else last_day
