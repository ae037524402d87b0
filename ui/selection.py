"""The console's date selection: dates picked on the Coverage page for a later backfill.

The selection lives in session state under ``SELECTED_DATES_KEY`` as a sorted list of
``datetime.date``. It is a plain session-state value, not a widget's key, so it survives page
switches (Streamlit drops the state of widgets that are not drawn) and the Backfill page can read it.
These functions take any mutable mapping, so they are tested with a dict.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping, MutableMapping
from typing import Any

from backfill.errors import BadInput
from backfill.validate import parse_date

SELECTED_DATES_KEY = "selected_dates"
"""Session-state key of the selection; other pages read it, so it carries no page prefix."""


def selected_dates(state: Mapping[str, Any]) -> list[dt.date]:
    """The selected dates, sorted (empty when nothing was selected)."""
    return list(state.get(SELECTED_DATES_KEY, []))


def add_dates(state: MutableMapping[str, Any], dates: Iterable[dt.date]) -> list[dt.date]:
    """Add dates to the selection; returns the ones that were not selected before."""
    current = set(selected_dates(state))
    new = sorted(set(dates) - current)
    if new:
        state[SELECTED_DATES_KEY] = sorted(current | set(new))
    return new


def toggle_dates(
    state: MutableMapping[str, Any], dates: Iterable[dt.date]
) -> tuple[list[dt.date], list[dt.date]]:
    """Select the given dates that are not selected and unselect those that are: (added, removed)."""
    current = set(selected_dates(state))
    picked = set(dates)
    added, removed = sorted(picked - current), sorted(picked & current)
    if picked:
        state[SELECTED_DATES_KEY] = sorted(current ^ picked)
    return added, removed


def clear_dates(state: MutableMapping[str, Any]) -> None:
    """Empty the selection."""
    state[SELECTED_DATES_KEY] = []


def dates_from_chart_event(event: Any, param: str) -> list[dt.date]:
    """Dates of the cells picked in an Altair chart's selection event (Streamlit's chart state).

    Streamlit reports a point selection as ``{"selection": {param: [{"game_date": ...}, ...]}}``;
    values that are not dates are skipped rather than trusted.
    """
    selection = (event or {}).get("selection", {}) or {}
    picked = []
    for point in selection.get(param, []) or []:
        try:
            picked.append(parse_date(str(point.get("game_date", ""))[:10]))
        except (BadInput, AttributeError):
            continue
    return sorted(set(picked))


def apply_click(
    state: MutableMapping[str, Any], event: Any, param: str, game_days: Collection[dt.date]
) -> tuple[list[dt.date], str | None]:
    """Apply a calendar click: toggle the picked dates that had games.

    Returns the dates that had games (the page opens the last one in its drill-down) and a one-line
    notice for picked dates without games, which have nothing to backfill.
    """
    picked = dates_from_chart_event(event, param)
    playable = [day for day in picked if day in game_days]
    skipped = [day for day in picked if day not in game_days]
    toggle_dates(state, playable)
    notice = f"{', '.join(map(str, skipped))}: no games, nothing to backfill." if skipped else None
    return playable, notice


RANGE_ANCHOR_KEY = "coverage_range_anchor"
"""Session key of the first day of a range being picked on the calendar (range mode)."""


def range_click(
    state: MutableMapping[str, Any], day: dt.date, game_days: Collection[dt.date]
) -> tuple[list[dt.date], str]:
    """A click in range mode: the first click marks a range's first day, the second selects every
    game date from it to the clicked day (either order), both ends included. Returns the dates
    selected (none on a first click) and a one-line notice."""
    anchor = state.pop(RANGE_ANCHOR_KEY, None)
    if not isinstance(anchor, dt.date):
        state[RANGE_ANCHOR_KEY] = day
        return [], f"Range from {day}: now click its last day."
    low, high = min(anchor, day), max(anchor, day)
    days = sorted(game_day for game_day in game_days if low <= game_day <= high)
    add_dates(state, days)
    count = len(days)
    return days, f"Selected the {count} game date{'s' if count != 1 else ''} from {low} to {high}."


def _day_of(value: Any) -> dt.date | None:
    """A date from a chart's selection value: ISO text or milliseconds since the epoch (UTC)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).date()
    try:
        return parse_date(str(value)[:10])
    except BadInput:
        return None


def dates_from_week_range(event: Any, param: str, game_days: Collection[dt.date]) -> list[dt.date]:
    """Game dates of the weeks an interval selection over the calendar's weeks covers.

    Streamlit reports it as ``{"selection": {param: {"week_start": [low, high]}}}``; a week is in
    when its Monday lies in ``[Monday of low's week, high]``.
    """
    interval = ((event or {}).get("selection", {}) or {}).get(param) or {}
    bounds = interval.get("week_start") if isinstance(interval, dict) else None
    if not bounds or len(bounds) != 2:
        return []
    low, high = (_day_of(value) for value in bounds)
    if low is None or high is None:
        return []
    low, high = min(low, high), max(low, high)
    first = low - dt.timedelta(days=low.weekday())
    last = high - dt.timedelta(days=high.weekday()) + dt.timedelta(days=6)
    return sorted(day for day in game_days if first <= day <= last)


def months_from_chart_event(event: Any, param: str) -> list[str]:
    """Months (``YYYY-MM``) clicked in the monthly heatmap."""
    selection = (event or {}).get("selection", {}) or {}
    return sorted(
        {
            str(point.get("period", ""))[:7]
            for point in selection.get(param, []) or []
            if isinstance(point, dict) and len(str(point.get("period", ""))) >= 7
        }
    )
