"""The demo warehouse arrives in the state of the team's incident (SPEC 6)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from backfill import coverage, stale
from backfill.config import Settings
from backfill.demo import build_demo
from backfill.demo_calendar import TEAMS, season_days
from backfill.seasons import SEASON_SQL
from backfill.warehouse.duckdb import DuckDBWarehouse

DEC_1, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 31)
SETTINGS = Settings()


@pytest.fixture(scope="module")
def daily(demo_file) -> pd.DataFrame:
    warehouse = DuckDBWarehouse(SETTINGS, demo_file)
    first, last = coverage.data_bounds(warehouse)
    return coverage.daily_coverage(warehouse, SETTINGS, first, last)


def status_of(daily: pd.DataFrame, day: dt.date, stage: str) -> pd.Series:
    return daily[(daily["game_date"] == day) & (daily["stage"] == stage)].iloc[0]


def test_league_has_thirty_teams_about_450_players_and_1230_games(read_only_demo):
    summary = read_only_demo.query(
        "SELECT COUNT(DISTINCT team_abbr) AS teams, COUNT(DISTINCT player_lookup) AS players, "
        "COUNT(DISTINCT game_id) AS games, MIN(game_date) AS first_date FROM {pgs}"
    ).iloc[0]
    assert summary["teams"] == len(TEAMS) == 30
    assert 420 <= summary["players"] <= 460
    assert summary["games"] == 1230
    assert summary["first_date"] == dt.date(2021, 10, 19)


def test_calendar_has_off_days_and_the_all_star_break(read_only_demo):
    per_day = read_only_demo.query(
        "SELECT game_date, COUNT(DISTINCT game_id) AS games FROM {pgs} GROUP BY game_date"
    )
    games = dict(zip(per_day["game_date"], per_day["games"]))
    assert dt.date(2021, 12, 24) not in games  # Christmas Eve
    assert not any(dt.date(2022, 2, 18) <= day <= dt.date(2022, 2, 23) for day in games)  # All-Star break
    typical = sorted(games.values())[len(games) // 4 : 3 * len(games) // 4]
    assert min(typical) >= 5 and max(typical) <= 12
    assert len(games) == len(season_days(2021))


def test_predictions_are_missing_for_dec_7_and_blocked_for_dec_9(daily):
    dec7 = status_of(daily, dt.date(2021, 12, 7), "predictions")
    dec9 = status_of(daily, dt.date(2021, 12, 9), "predictions")
    assert (dec7["players_covered"], dec7["status"]) == (0, "missing")
    assert (dec9["players_covered"], dec9["status"]) == (0, "blocked")


def test_mlfs_of_dec_9_is_under_the_90_percent_gate(daily):
    row = status_of(daily, dt.date(2021, 12, 9), "mlfs")
    assert 70.0 <= row["player_game_coverage_pct"] < 90.0
    assert row["status"] == "partial"


def test_everything_else_is_complete_apart_from_early_season_bootstrap_dates(daily):
    incident = {
        (dt.date(2021, 12, 7), "predictions"),
        (dt.date(2021, 12, 9), "predictions"),
        (dt.date(2021, 12, 9), "mlfs"),
    }
    others = daily[[(d, s) not in incident for d, s in zip(daily["game_date"], daily["stage"])]]
    assert set(others["status"]) <= {"ok", "bootstrap", "no_games"}
    bootstrap_months = set(others.loc[others["status"] == "bootstrap", "period"])
    assert bootstrap_months and bootstrap_months <= {"2021-10", "2021-11"}
    assert (others.loc[others["status"] != "no_games", "expected_coverage_pct"].dropna() == 100.0).all()


def test_december_is_below_100_percent_before_any_backfill(demo_file):
    warehouse = DuckDBWarehouse(SETTINGS, demo_file)
    monthly = coverage.monthly_coverage(warehouse, SETTINGS, DEC_1, DEC_31)
    december = monthly.set_index("stage").loc["predictions"]
    assert december["expected_coverage_pct"] < 100.0
    assert december["status"] == "missing"
    assert "Dec 07 missing" in december["note"] and "Dec 09 blocked" in december["note"]


def test_every_stale_category_is_present_in_december(read_only_demo):
    counts = stale.stale_counts(read_only_demo, SETTINGS, DEC_1, DEC_31)
    assert set(counts["category"]) == set(stale.CATEGORIES)
    assert set(counts["table_name"]) == {"ml_feature_store", "player_prop_predictions"}
    outside = stale.stale_counts(read_only_demo, SETTINGS, dt.date(2021, 10, 1), dt.date(2021, 11, 30))
    assert outside.empty


def test_predictions_never_use_the_target_date_or_later_games(read_only_demo):
    # The MLFS row of a date must equal an average over strictly earlier games of the season.
    check = read_only_demo.query(
        """SELECT m.points_avg_last_5 AS stored,
             (SELECT AVG(points) FROM (SELECT points FROM {pgs} AS g WHERE g.player_lookup = m.player_lookup
                AND g.game_date < m.game_date AND g.game_date >= DATE '2021-08-01'
                ORDER BY g.game_date DESC LIMIT 5)) AS recomputed
           FROM {mlfs} AS m WHERE m.game_date = DATE '2022-01-15' AND m.history_games >= 5"""
    )
    assert len(check) > 50
    assert (check["stored"] - check["recomputed"]).abs().max() < 1e-9


@pytest.mark.slow  # builds the demo three times
def test_same_seed_gives_the_same_warehouse_and_another_seed_does_not():
    def snapshot(seed: int) -> pd.DataFrame:
        warehouse = DuckDBWarehouse(SETTINGS, ":memory:")
        build_demo(warehouse, SETTINGS, seed=seed)
        return warehouse.query(
            "SELECT game_date, player_lookup, points, minutes_played FROM {pgs} ORDER BY game_date, player_lookup"
        )

    first, again, other = snapshot(11), snapshot(11), snapshot(12)
    pd.testing.assert_frame_equal(first, again)
    assert not first.equals(other)


def test_each_table_holds_its_seasons_one_after_another():
    # As a warehouse filled day by day does, so a batch's statements can skip the other seasons.
    warehouse = DuckDBWarehouse(SETTINGS, ":memory:")
    build_demo(warehouse, SETTINGS, seasons=3)
    for table in ("pgs", "mlfs", "pred"):
        # rowid: DuckDB's position of a row in its table
        seasons = warehouse.query(f"SELECT {SEASON_SQL} AS season FROM {{{table}}} ORDER BY rowid")[
            "season"
        ].tolist()
        assert len(set(seasons)) == 3
        assert seasons == sorted(seasons), table
