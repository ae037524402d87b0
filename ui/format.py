"""Formatting of coverage figures for people: percentages, counts, dates and seasons."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable

from backfill.seasons import season_label

NO_VALUE = "–"
"""Shown where a figure does not exist (a percentage of nothing, a date without games)."""


def pct_text(value: float | None) -> str:
    """``94.6%``; a dash when there is nothing to measure."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    return f"{value:.1f}%"


def of_text(covered: int, total: int) -> str:
    """``4,518 / 4,784``."""
    return f"{int(covered):,} / {int(total):,}"


def date_text(day: dt.date) -> str:
    """``Tue 2021-12-07``: the weekday helps when reading a calendar."""
    return f"{day:%a %Y-%m-%d}"


def seasons_text(seasons: Iterable[int]) -> str:
    """``2021-22``, or ``2019-20 to 2021-22`` for several seasons."""
    ordered = sorted(set(seasons))
    if not ordered:
        return NO_VALUE
    if len(ordered) == 1:
        return season_label(ordered[0])
    return f"{season_label(ordered[0])} to {season_label(ordered[-1])}"


def dates_text(days: Iterable[dt.date], limit: int = 12) -> str:
    """A short comma-separated list of ISO dates, ending in ``(+N more)`` past ``limit``."""
    ordered = sorted(days)
    shown = ", ".join(f"{day:%Y-%m-%d}" for day in ordered[:limit])
    rest = len(ordered) - limit
    return f"{shown} (+{rest} more)" if rest > 0 else shown


STATUS_COLORS = {
    "ok": "green",
    "bootstrap": "blue",
    "partial": "orange",
    "blocked": "violet",
    "missing": "red",
    "no_games": "gray",
}
"""Streamlit Markdown colour of each coverage status (as the heatmaps colour them)."""

STATUS_BACKGROUNDS = {
    "ok": "#d9f0d3",
    "bootstrap": "#dbeaf5",
    "partial": "#fde9b5",
    "blocked": "#e4dbf0",
    "missing": "#f8d0d0",
}
"""Table cell background of each coverage status."""


def status_text(status: str) -> str:
    """A status in its colour, for Markdown labels: ``:red[missing]``."""
    return f":{STATUS_COLORS.get(status, 'gray')}[{status}]"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 row``, ``2 rows``."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"
