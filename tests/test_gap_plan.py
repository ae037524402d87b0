"""A gap-dates backfill plans, on each date, only the stages with a gap there and their downstream
stages (issue 23); the request keeps those items through the ledger and a rerun."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.gap_plan import gap_items
from backfill.pipeline import load_pipeline
from backfill.request import BackfillRequest

TEAM = load_pipeline(Path(__file__).resolve().parents[1] / "examples" / "team_pipeline" / "pipeline.toml")
# The team's chain, written out by hand: played -> mlfs -> predictions -> grading.
DOWNSTREAM = {"mlfs": {"mlfs", "predictions", "grading"}, "predictions": {"predictions", "grading"}}
DOWNSTREAM["grading"] = {"grading"}
DEC = [dt.date(2021, 12, day) for day in range(1, 32)]


def test_a_date_gets_its_gap_stages_and_their_downstream_and_nothing_else():
    gaps = [("grading", DEC[0]), ("predictions", DEC[6]), ("mlfs", DEC[8]), ("grading", DEC[8])]
    assert gap_items(TEAM, gaps) == [
        ("grading", DEC[0]),
        ("predictions", DEC[6]),
        ("grading", DEC[6]),
        ("mlfs", DEC[8]),
        ("predictions", DEC[8]),
        ("grading", DEC[8]),
    ]


@settings(max_examples=80, deadline=None)
@given(
    st.sets(st.tuples(st.sampled_from(["mlfs", "predictions", "grading", "played"]), st.sampled_from(DEC)))
)
def test_every_planned_item_is_a_gap_or_downstream_of_one_on_its_own_date(gaps):
    planned = gap_items(TEAM, gaps)
    expected = {
        (stage, day)
        for gap_stage, day in gaps
        if gap_stage != "played"  # the reference is never backfilled
        for stage in DOWNSTREAM[gap_stage]
    }
    assert set(planned) == expected
    assert len(planned) == len(expected)  # no item twice
    assert planned == sorted(planned, key=lambda item: (item[1], TEAM.stage_names.index(item[0])))


def test_a_request_of_some_items_keeps_them_through_its_params_and_a_rerun_is_whole_again():
    team = Settings(pipeline=TEAM)
    only = [("grading", DEC[0]), ("predictions", DEC[6]), ("grading", DEC[6])]
    request = BackfillRequest.build(
        team, dates=[DEC[0], DEC[6]], only=only, today=lambda: dt.date(2022, 7, 1)
    )
    assert request.items() == only
    assert request.stages == ("predictions", "grading") and request.dates == (DEC[0], DEC[6])
    assert BackfillRequest.from_params(request.to_params()) == request
    assert request.with_dates([DEC[6]]).items() == [("predictions", DEC[6]), ("grading", DEC[6])]


def test_chosen_stages_narrow_the_items_and_none_left_is_bad_input():
    team = Settings(pipeline=TEAM)
    only = [("grading", DEC[0]), ("predictions", DEC[6]), ("grading", DEC[6])]
    today = lambda: dt.date(2022, 7, 1)  # noqa: E731
    narrowed = BackfillRequest.build(team, dates=DEC[:7], stages=["predictions"], only=only, today=today)
    assert narrowed.items() == [("predictions", DEC[6])]
    with pytest.raises(BadInput, match="no work item left"):
        BackfillRequest.build(team, dates=DEC[:7], stages=["mlfs"], only=only, today=today)
