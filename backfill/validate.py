"""Checks of everything that comes from a user: dates, ranges, thresholds, stages, names.

Each check raises :class:`BadInput` with a one-line message and touches nothing, so callers can
validate all input before they write anything.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Callable, Iterable

from backfill.errors import BadInput

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PROJECT = re.compile(r"^[a-z][a-z0-9-]{0,61}[a-z0-9]$")


def check_identifier(name: str, what: str = "name") -> str:
    """A dataset, table or system name must be a plain identifier (letters, digits, underscores)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise BadInput(f"{what} {name!r} is not a plain identifier (letters, digits, underscores)")
    return name


def check_project(project: str) -> str:
    """A BigQuery project id: lowercase letters, digits and hyphens."""
    if not _PROJECT.match(project or ""):
        raise BadInput(f"BigQuery project {project!r} is not a valid project id")
    return project


ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
"""The one spelling of a typed date: Python alone would also take 20210305 and 2021-W10."""


def parse_date(text: str | dt.date, what: str = "date") -> dt.date:
    """Parse an ISO date, strictly YYYY-MM-DD (``20211345`` or ``2021-W10`` are refused, not guessed)."""
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    try:
        if not ISO_DATE.fullmatch(str(text).strip()):
            raise ValueError(text)
        return dt.date.fromisoformat(str(text).strip())
    except ValueError:
        raise BadInput(f"{what} {text!r} is not a date (expected YYYY-MM-DD)") from None


def check_pct(value: float | str, what: str = "percentage") -> float:
    """A percentage threshold between 0 and 100."""
    try:
        pct = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what} {value!r} is not a number") from None
    if not 0.0 <= pct <= 100.0:
        raise BadInput(f"{what} must be between 0 and 100, got {value}")
    return pct


def check_range(
    start: dt.date,
    end: dt.date,
    *,
    max_days: int | None = None,
    today: Callable[[], dt.date] = dt.date.today,
) -> tuple[dt.date, dt.date]:
    """An inclusive date range: not reversed, not in the future, not longer than ``max_days``."""
    for day in (start, end):
        if day > today():
            raise BadInput(f"date {day} is in the future")
    if start > end:
        raise BadInput(f"range is reversed: start {start} is after end {end}")
    days = (end - start).days + 1
    if max_days is not None and days > max_days:
        raise BadInput(f"range of {days} days is over the maximum of {max_days} days")
    return start, end


def parse_date_list(
    text: str | Iterable[str | dt.date],
    *,
    max_days: int | None = None,
    today: Callable[[], dt.date] = dt.date.today,
) -> list[dt.date]:
    """A comma-separated or iterable list of dates: sorted, unique, none in the future."""
    items = text.split(",") if isinstance(text, str) else list(text)
    dates = sorted({parse_date(item) for item in items if str(item).strip()})
    if not dates:
        raise BadInput("no date given")
    future = [d for d in dates if d > today()]
    if future:
        raise BadInput(f"date {future[0]} is in the future")
    if max_days is not None and len(dates) > max_days:
        raise BadInput(f"{len(dates)} dates is over the maximum of {max_days}")
    return dates


def date_span(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every date from start to end, inclusive."""
    return list(_span(start, end))


def date_set(start: dt.date, end: dt.date) -> frozenset[dt.date]:
    """The dates of :func:`date_span` as a set; the last few are kept (a coverage look asks for the
    same whole range several times, and 50 seasons are 18,000 dates)."""
    return _span_set(start, end)


@functools.lru_cache(maxsize=8)
def _span(start: dt.date, end: dt.date) -> tuple[dt.date, ...]:
    return tuple(map(dt.date.fromordinal, range(start.toordinal(), end.toordinal() + 1)))


@functools.lru_cache(maxsize=8)
def _span_set(start: dt.date, end: dt.date) -> frozenset[dt.date]:
    return frozenset(_span(start, end))


MAX_DELAY_S = 3600.0
"""The longest wait before a retry any setting may ask for (an hour: longer is a hang, not a retry)."""


def check_delays(delays: tuple[float, ...], what: str, limit: float = MAX_DELAY_S) -> tuple[float, ...]:
    """Retry delays: at least one, each a number of seconds from 0 to ``limit`` (BadInput otherwise)."""
    if not delays:
        raise BadInput(f"{what} is empty: give seconds before each retry, e.g. 30,60,120")
    if any(not 0 <= delay <= limit for delay in delays):  # NaN fails both comparisons
        raise BadInput(f"{what} must be between 0 and {limit:g} seconds")
    return delays
