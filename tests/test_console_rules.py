"""Rules the console's pages used to keep to themselves, now in the backend (issue 12, part 8)."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pandas as pd
import pytest

from backfill import rerun_rules
from backfill.drill import INCIDENT_DATE, default_drill_date
from backfill.reviewed_delete import ReviewOutdated, delete_as_reviewed
from backfill.severity import not_yet_backfilled, worst_months_first
from backfill.stale import stale_counts

DEC = dt.date(2021, 12, 1)
LAST = dt.date(2022, 4, 10)


def test_the_drill_down_opens_on_the_incident_date_while_it_is_a_gap():
    assert default_drill_date([dt.date(2021, 12, 9), INCIDENT_DATE], LAST) == INCIDENT_DATE
    assert dt.date(2021, 12, 7) == INCIDENT_DATE  # SPEC 1: the first date whose predictions timed out


def test_without_the_incident_the_drill_down_opens_on_the_newest_gap_or_the_last_date():
    assert default_drill_date([dt.date(2021, 11, 2), dt.date(2022, 1, 5)], LAST) == dt.date(2022, 1, 5)
    assert default_drill_date([], LAST) == LAST


def _item(status: str, error_class: str | None = None) -> dict:
    return {"status": status, "error_class": error_class, "stage": "predictions", "game_date": "2021-12-09"}


@dataclasses.dataclass
class _Run:
    status: str


def test_a_rerun_takes_what_a_finished_run_left_unfinished_and_resume_only_an_interrupted_run():
    items = [_item("done"), _item("failed", "transient"), _item("blocked", "blocked"), _item("skipped")]
    assert [item["status"] for item in rerun_rules.unfinished(items)] == ["failed", "blocked"]
    assert [item["status"] for item in rerun_rules.transient_failures(items)] == ["failed"]
    assert rerun_rules.may_rerun(_Run("blocked"), items)
    assert not rerun_rules.may_rerun(_Run("running"), items)
    assert not rerun_rules.may_rerun(_Run("succeeded"), [_item("done")])
    assert rerun_rules.may_resume(_Run("interrupted")) and not rerun_rules.may_resume(_Run("failed"))


def test_a_deletion_deletes_exactly_what_the_review_showed(settings, demo):
    end = dt.date(2021, 12, 31)
    reviewed = stale_counts(demo, settings, DEC, end)
    assert len(reviewed), "the demo has stale rows in December"
    deleted = delete_as_reviewed(settings, demo, DEC, end, reviewed, "operator")
    assert int(deleted["rows"].sum()) == int(reviewed["rows"].sum())
    assert stale_counts(demo, settings, DEC, end).empty


def test_a_deletion_after_the_stale_rows_changed_deletes_nothing_and_returns_the_new_counts(settings, demo):
    end = dt.date(2021, 12, 31)
    reviewed = stale_counts(demo, settings, DEC, end)
    first_day = min(reviewed["game_date"])
    delete_as_reviewed(
        settings, demo, first_day, first_day, stale_counts(demo, settings, first_day, first_day), "b"
    )
    before = stale_counts(demo, settings, DEC, end)
    with pytest.raises(ReviewOutdated) as outdated:
        delete_as_reviewed(settings, demo, DEC, end, reviewed, "operator")
    assert outdated.value.counts.equals(before)
    assert stale_counts(demo, settings, DEC, end).equals(before), "nothing deleted"


def test_worst_months_first_puts_missing_then_blocked_then_partial_and_the_lower_coverage_first():
    monthly = pd.DataFrame(
        [  # period, stage, status, player_game_coverage_pct
            ("2021-11", "mlfs", "partial", 97.0),
            ("2021-12", "predictions", "blocked", 99.0),
            ("2022-01", "predictions", "missing", 96.0),
            ("2021-10", "predictions", "bootstrap", 40.0),  # expected, not a gap
            ("2021-12", "mlfs", "partial", 90.0),
            ("2022-02", "predictions", "missing", 92.0),
            ("2022-03", "mlfs", "ok", 100.0),
        ],
        columns=["period", "stage", "status", "player_game_coverage_pct"],
    ).assign(player_games_covered=90, player_games_total=100)
    ordered = worst_months_first(monthly)
    assert list(zip(ordered["period"], ordered["stage"], strict=True)) == [
        ("2022-02", "predictions"),  # missing, 92.0
        ("2022-01", "predictions"),  # missing, 96.0
        ("2021-12", "predictions"),  # blocked
        ("2021-12", "mlfs"),  # partial, 90.0
        ("2021-11", "mlfs"),  # partial, 97.0
    ]
    assert list(monthly.columns) == list(ordered.columns), "the rows as they were, only ordered"


def test_a_stage_without_one_row_is_not_yet_backfilled_and_left_out_of_the_worst_months():
    monthly = pd.DataFrame(
        [  # period, stage, status, player_game_coverage_pct, covered, total
            ("2021-11", "grading", "missing", 0.0, 0, 500),
            ("2021-12", "grading", "missing", 0.0, 0, 400),
            ("2021-12", "predictions", "missing", 95.0, 380, 400),
            ("2021-12", "mlfs", "partial", 99.0, 396, 400),
            ("2022-01", "mlfs", "missing", 0.0, 0, 300),  # one empty month of a stage with rows
        ],
        columns=[
            "period",
            "stage",
            "status",
            "player_game_coverage_pct",
            "player_games_covered",
            "player_games_total",
        ],
    )
    assert not_yet_backfilled(monthly) == ["grading"]
    ordered = worst_months_first(monthly)
    assert list(zip(ordered["period"], ordered["stage"], strict=True)) == [
        ("2022-01", "mlfs"),
        ("2021-12", "predictions"),
        ("2021-12", "mlfs"),
    ]
