"""An exact date range on the calendar (issue 23): in range mode the first click marks the first day,
the second selects every game date from it to the clicked day, in either order."""

from __future__ import annotations

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from ui import selection

SEASON = [dt.date(2021, 10, 19) + dt.timedelta(days=offset) for offset in range(174)]


def test_first_click_marks_the_start_and_the_second_selects_the_game_dates_between():
    games = {dt.date(2021, 12, day) for day in (6, 7, 9, 10, 12, 14)}
    state: dict = {}
    picked, notice = selection.range_click(state, dt.date(2021, 12, 14), games)
    assert picked == [] and "Range from 2021-12-14" in notice and selection.selected_dates(state) == []
    picked, notice = selection.range_click(state, dt.date(2021, 12, 7), games)
    expected = [dt.date(2021, 12, day) for day in (7, 9, 10, 12, 14)]  # by hand: Dec 7..14 with games
    assert picked == expected and selection.selected_dates(state) == expected
    assert notice == "Selected the 5 game dates from 2021-12-07 to 2021-12-14."
    assert selection.RANGE_ANCHOR_KEY not in state  # the next click starts a new range


@settings(max_examples=100, deadline=None)
@given(
    games=st.sets(st.sampled_from(SEASON)),
    first=st.sampled_from(SEASON),
    last=st.sampled_from(SEASON),
    already=st.sets(st.sampled_from(SEASON), max_size=5),
)
def test_a_range_adds_exactly_the_game_dates_between_its_ends_to_what_was_selected(
    games, first, last, already
):
    state: dict = {}
    selection.add_dates(state, already)
    selection.range_click(state, first, games)
    picked, _ = selection.range_click(state, last, games)
    low, high = min(first, last), max(first, last)
    between = {day for day in games if low <= day <= high}
    assert set(picked) == between
    assert set(selection.selected_dates(state)) == set(already) | between
