"""Every definition of SPEC 3 on tiny hand-built tables whose answers can be counted by hand."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from backfill import coverage, stale
from backfill.config import Settings
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.schema import ML_FEATURE_STORE, PLAYER_GAME_SUMMARY, PLAYER_PROP_PREDICTIONS
from tests.builtin import with_bootstrap, with_version

UTC = dt.UTC
T0 = dt.datetime(2021, 11, 20, 6, 0, tzinfo=UTC)
T1 = T0 + dt.timedelta(days=1)
NOV = [dt.date(2021, 11, day) for day in range(1, 6)]


def pgs_rows(day: dt.date, players: list[str], processed_at: dt.datetime = T0) -> list[dict]:
    return [
        {
            "game_date": day,
            "player_lookup": player,
            "player_name": player.title(),
            "game_id": f"{day:%Y%m%d}_AAA_BBB",
            "team_abbr": "BBB",
            "opponent_abbr": "AAA",
            "is_home": True,
            "minutes_played": 30.0,
            "points": 20,
            "processed_at": processed_at,
        }
        for player in players
    ]


def mlfs_rows(day: dt.date, players: list[str], **overrides) -> list[dict]:
    base = {
        "team_abbr": "BBB",
        "points_avg_last_5": 20.0,
        "points_avg_last_10": 20.0,
        "minutes_avg_last_5": 30.0,
        "minutes_avg_last_10": 30.0,
        "points_avg_season": 20.0,
        "rest_days": 1,
        "history_games": 5,
        "feature_version": "features_v3",
        "source_processed_at": T0,
        "processed_at": T1,
    }
    return [{"game_date": day, "player_lookup": player} | base | overrides for player in players]


def pred_rows(day: dt.date, players: list[str], systems=("weighted_form",), **overrides) -> list[dict]:
    base = {
        "predicted_points": 20.0,
        "model_version": "form_v2",
        "feature_processed_at": T1,
        "created_at": T1,
    }
    return [
        {"game_date": day, "player_lookup": player, "system_id": system} | base | overrides
        for player in players
        for system in systems
    ]


def make_warehouse(pgs: list[dict], mlfs: list[dict] = (), pred: list[dict] = ()) -> DuckDBWarehouse:
    warehouse = DuckDBWarehouse(Settings(), ":memory:")
    warehouse.create_schema()
    for table, rows in (
        (PLAYER_GAME_SUMMARY, pgs),
        (ML_FEATURE_STORE, mlfs),
        (PLAYER_PROP_PREDICTIONS, pred),
    ):
        if rows:
            frame = pd.DataFrame(list(rows), columns=list(table.column_names))
            warehouse.load_frame(table, frame)
    return warehouse


def day_row(daily: pd.DataFrame, day: dt.date, stage: str) -> pd.Series:
    rows = daily[(daily["game_date"] == day) & (daily["stage"] == stage)]
    assert len(rows) == 1
    return rows.iloc[0]


SETTINGS = Settings()


def test_player_game_coverage_counts_rows_of_player_game_summary_that_have_a_stage_row():
    players = ["a", "b", "c", "d"]
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, players), mlfs_rows(day, ["a", "b", "c"]), pred_rows(day, ["a"], systems=("x", "y"))
    )
    daily = coverage.daily_coverage(warehouse, SETTINGS, day, day)
    mlfs = day_row(daily, day, "mlfs")
    assert (mlfs["players_covered"], mlfs["players_total"], mlfs["player_game_coverage_pct"]) == (3, 4, 75.0)
    predictions = day_row(daily, day, "predictions")
    # Two systems for one player still cover one player-game.
    assert (predictions["players_covered"], predictions["player_game_coverage_pct"]) == (1, 25.0)


def test_rows_without_a_player_game_summary_row_do_not_count_as_coverage():
    day = NOV[0]
    warehouse = make_warehouse(pgs_rows(day, ["a", "b"]), mlfs_rows(day, ["a", "ghost"]))
    row = day_row(coverage.daily_coverage(warehouse, SETTINGS, day, day), day, "mlfs")
    assert (row["players_covered"], row["players_total"]) == (1, 2)


def test_player_coverage_of_a_month_counts_distinct_players_as_the_team_query_does():
    # a plays both days and is predicted once; b plays both days, never predicted; c plays once, predicted.
    pgs = pgs_rows(NOV[0], ["a", "b", "c"]) + pgs_rows(NOV[1], ["a", "b"])
    pred = pred_rows(NOV[0], ["a", "c"])
    warehouse = make_warehouse(pgs, pred=pred)
    monthly = coverage.monthly_coverage(warehouse, SETTINGS, NOV[0], NOV[1])
    row = monthly[monthly["stage"] == "predictions"].iloc[0]
    assert row["period"] == "2021-11"
    assert (row["players_covered"], row["players_total"], row["player_coverage_pct"]) == (2, 3, 66.7)
    # Player-game coverage of the same month: 2 of 5 player-games.
    assert (row["player_games_covered"], row["player_games_total"], row["player_game_coverage_pct"]) == (
        2,
        5,
        40.0,
    )


def _season_with_a_rookie() -> list[dict]:
    """Veterans a, b play Nov 1-4 (3 earlier games on Nov 4); rookie r debuts on Nov 4."""
    rows = []
    for day in NOV[:3]:
        rows += pgs_rows(day, ["a", "b"])
    return rows + pgs_rows(NOV[3], ["a", "b", "r"])


def test_expected_coverage_leaves_bootstrap_players_out_of_the_denominator():
    day = NOV[3]
    warehouse = make_warehouse(_season_with_a_rookie(), pred=pred_rows(day, ["a", "b"]))
    row = day_row(coverage.daily_coverage(warehouse, SETTINGS, day, day), day, "predictions")
    assert row["bootstrap_players"] == 1
    assert (row["expected_covered"], row["expected_total"], row["expected_coverage_pct"]) == (2, 2, 100.0)
    assert row["player_game_coverage_pct"] == 66.7
    assert row["status"] == "bootstrap"


def test_history_restarts_each_season():
    last_season = [dt.date(2021, 4, day) for day in (1, 2, 3)]
    pgs = [row for day in last_season for row in pgs_rows(day, ["a"])] + pgs_rows(NOV[0], ["a"])
    warehouse = make_warehouse(pgs)
    row = day_row(coverage.daily_coverage(warehouse, SETTINGS, NOV[0], NOV[0]), NOV[0], "predictions")
    assert row["bootstrap_players"] == 1


@pytest.mark.parametrize(
    ("mlfs_players", "pred_players", "expected_status"),
    [
        (["a", "b", "c", "d"], ["a", "b", "c", "d"], "ok"),
        (["a", "b", "c", "d"], ["a", "b", "c"], "partial"),
        (["a", "b", "c", "d"], [], "missing"),
        (["a", "b", "c"], [], "blocked"),  # MLFS at 75% < 90% gate
        (["a", "b", "c"], ["a"], "blocked"),
    ],
)
def test_date_status_of_predictions(mlfs_players, pred_players, expected_status):
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a", "b", "c", "d"]), mlfs_rows(day, mlfs_players), pred_rows(day, pred_players)
    )
    settings = with_bootstrap(SETTINGS, 0)
    row = day_row(coverage.daily_coverage(warehouse, settings, day, day), day, "predictions")
    assert row["status"] == expected_status


def test_blocked_needs_the_upstream_below_the_gate_not_just_below_ok():
    players = [f"p{i}" for i in range(20)]
    day = NOV[0]
    # MLFS 19/20 = 95%: under ok (99) but over the gate (90): predictions are a plain gap.
    warehouse = make_warehouse(pgs_rows(day, players), mlfs_rows(day, players[:19]))
    settings = with_bootstrap(SETTINGS, 0)
    daily = coverage.daily_coverage(warehouse, settings, day, day)
    assert day_row(daily, day, "mlfs")["status"] == "partial"
    assert day_row(daily, day, "predictions")["status"] == "missing"


def test_a_date_without_games_is_no_games_not_a_gap():
    warehouse = make_warehouse(pgs_rows(NOV[0], ["a"]) + pgs_rows(NOV[2], ["a"]))
    daily = coverage.daily_coverage(warehouse, SETTINGS, NOV[0], NOV[2])
    assert day_row(daily, NOV[1], "mlfs")["status"] == "no_games"
    assert day_row(daily, NOV[1], "predictions")["players_total"] == 0


def test_ok_threshold_is_configurable():
    players = [f"p{i}" for i in range(10)]
    day = NOV[0]
    warehouse = make_warehouse(pgs_rows(day, players), mlfs_rows(day, players[:9]))
    strict = coverage.daily_coverage(warehouse, with_bootstrap(SETTINGS, 0), day, day)
    lenient = coverage.daily_coverage(warehouse, with_bootstrap(SETTINGS, 0).replace(ok_pct=90), day, day)
    assert day_row(strict, day, "mlfs")["status"] == "partial"
    assert day_row(lenient, day, "mlfs")["status"] == "ok"


def test_month_status_is_its_most_severe_date_and_the_note_names_gap_dates():
    pgs = pgs_rows(NOV[0], ["a"]) + pgs_rows(NOV[1], ["a"])
    mlfs = mlfs_rows(NOV[0], ["a"]) + mlfs_rows(NOV[1], ["a"])
    warehouse = make_warehouse(pgs, mlfs, pred_rows(NOV[0], ["a"]))
    settings = with_bootstrap(SETTINGS, 0)
    monthly = coverage.monthly_coverage(warehouse, settings, NOV[0], NOV[1])
    row = monthly[monthly["stage"] == "predictions"].iloc[0]
    assert row["status"] == "missing"
    assert row["note"] == "1 gap date: Nov 02 missing"


@pytest.mark.parametrize(
    ("covered", "total", "expected"),
    [
        (1, 3, 33.3),
        (2, 3, 66.7),
        (1, 8, 12.5),
        (552, 553, 99.8),
        (9999, 10000, 99.9),
        (1, 10000, 0.1),
        (0, 5, 0.0),
        (5, 5, 100.0),
        (0, 0, None),
    ],
)
def test_percentages_have_one_decimal_rounded_half_up_and_never_claim_complete_early(
    covered, total, expected
):
    assert coverage.pct(covered, total) == expected


def test_missing_players_of_a_date_say_why():
    day = NOV[3]
    pgs = _season_with_a_rookie() + pgs_rows(day, ["c"])
    for earlier in NOV[:3]:
        pgs += pgs_rows(earlier, ["c"])
    warehouse = make_warehouse(pgs, mlfs_rows(day, ["a", "b", "r"]), pred_rows(day, ["a"]))
    missing = coverage.missing_players(warehouse, SETTINGS, day).set_index("player_lookup")
    assert set(missing.index) == {"b", "c", "r"}
    assert missing.loc["c", "reason"] == "no MLFS row"
    assert missing.loc["r", "reason"].startswith("bootstrap")
    # 3 of 4 players have MLFS (75%), under the gate: b's prediction is blocked upstream.
    assert missing.loc["b", "reason"].startswith("blocked upstream: MLFS covers 75.0%")


def test_missing_players_without_a_gate_problem_are_plain_prediction_gaps():
    day = NOV[3]
    warehouse = make_warehouse(
        _season_with_a_rookie(), mlfs_rows(day, ["a", "b", "r"]), pred_rows(day, ["a"])
    )
    missing = coverage.missing_players(warehouse, SETTINGS, day).set_index("player_lookup")
    assert missing.loc["b", "reason"] == "MLFS row but no predictions row"


# -- stale rows ----------------------------------------------------------------------------------


def stale_of(warehouse, settings=SETTINGS) -> dict[tuple[str, str], int]:
    counts = stale.stale_counts(warehouse, settings, NOV[0], NOV[-1])
    return {(row.table_name, row.category): row.rows for row in counts.itertuples()}


def test_clean_tables_have_no_stale_rows():
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a", "b"]), mlfs_rows(day, ["a", "b"]), pred_rows(day, ["a", "b"])
    )
    assert stale_of(warehouse) == {}


def test_orphans_are_rows_without_a_player_game_summary_row():
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a"]), mlfs_rows(day, ["a", "old_name"]), pred_rows(day, ["a", "old_name", "x"])
    )
    assert stale_of(warehouse) == {
        ("ml_feature_store", "orphan"): 1,
        ("player_prop_predictions", "orphan"): 2,
    }


def test_duplicates_count_the_extra_rows_of_a_key():
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a"]),
        mlfs_rows(day, ["a", "a", "a"]),
        pred_rows(day, ["a"], systems=("s1", "s2")) + pred_rows(day, ["a"], systems=("s1",)),
    )
    assert stale_of(warehouse) == {
        ("ml_feature_store", "duplicate"): 2,
        ("player_prop_predictions", "duplicate"): 1,
    }


def test_outdated_rows_were_computed_before_their_upstream_row_changed():
    day = NOV[0]
    later = T1 + dt.timedelta(hours=5)
    warehouse = make_warehouse(
        pgs_rows(day, ["a"], processed_at=later) + pgs_rows(day, ["b"]),
        mlfs_rows(day, ["a", "b"]),  # source_processed_at T0: a's upstream changed at `later`
        pred_rows(day, ["b"], feature_processed_at=T0),  # MLFS row of b processed at T1 > T0
    )
    assert stale_of(warehouse) == {
        ("ml_feature_store", "outdated"): 1,
        ("player_prop_predictions", "outdated"): 1,
    }


def test_old_versions_differ_from_the_configured_current_version():
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a", "b"]),
        mlfs_rows(day, ["a"], feature_version="features_v2") + mlfs_rows(day, ["b"]),
        pred_rows(day, ["a", "b"], model_version="form_v1"),
    )
    assert stale_of(warehouse) == {
        ("ml_feature_store", "old_version"): 1,
        ("player_prop_predictions", "old_version"): 2,
    }
    # Configure form_v1 as current and the predictions are no longer stale.
    assert ("player_prop_predictions", "old_version") not in stale_of(
        warehouse, with_version(SETTINGS, "predictions", "form_v1")
    )


def test_null_fields_are_nulls_in_required_columns():
    day = NOV[0]
    warehouse = make_warehouse(
        pgs_rows(day, ["a", "b"]),
        mlfs_rows(day, ["a"], history_games=None) + mlfs_rows(day, ["b"]),
        pred_rows(day, ["a"], predicted_points=None) + pred_rows(day, ["b"]),
    )
    assert stale_of(warehouse) == {
        ("ml_feature_store", "null_field"): 1,
        ("player_prop_predictions", "null_field"): 1,
    }


def test_stale_preview_lists_the_flagged_rows():
    day = NOV[0]
    warehouse = make_warehouse(pgs_rows(day, ["a"]), mlfs_rows(day, ["a", "ghost"]))
    preview = stale.stale_preview(warehouse, SETTINGS, "mlfs", NOV[0], NOV[-1])
    assert preview["player_lookup"].tolist() == ["ghost"]
    assert bool(preview["orphan"].iloc[0]) is True
