"""Coverage: how much of player_game_summary each stage covers, per date and per month.

Definitions (SPEC 3):

- player-game coverage: share of (date, player) rows of player_game_summary with a row in the stage;
- player coverage of a period: distinct covered players / distinct players (the team's own figure);
- expected coverage: player-game coverage with bootstrap players left out of the denominator;
- date status: ``ok``, ``partial``, ``missing``, ``blocked``, ``bootstrap`` or ``no_games``.

A bootstrap player has fewer than ``min_history_games`` earlier games in the season. The whole
range is measured by two set-based queries (per date, and per month for distinct players), never
one query per date; statuses are then derived from the counts.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from backfill.config import Settings
from backfill.seasons import SEASON_SQL, season_start
from backfill.validate import STAGES, date_span
from backfill.warehouse import Warehouse

STATUSES = ("missing", "blocked", "partial", "bootstrap", "ok", "no_games")
"""Date statuses, most severe first; a month takes the most severe status of its dates."""

GAP_STATUSES = ("missing", "blocked", "partial")
"""Statuses that are real gaps (bootstrap dates are expected, no_games dates have nothing to do)."""

# Every (date, player) of player_game_summary with the player's earlier games in the season.
PLAYED_CTE = f"""played AS (
  SELECT game_date, player_lookup, player_name, team_abbr,
    ROW_NUMBER() OVER (PARTITION BY player_lookup, season ORDER BY game_date) - 1 AS history_games
  FROM (
    SELECT game_date, player_lookup, {SEASON_SQL} AS season,
      MAX(player_name) AS player_name, MAX(team_abbr) AS team_abbr
    FROM {{pgs}}
    WHERE game_date BETWEEN @history_start AND @end
    GROUP BY game_date, player_lookup
  ) AS games
)"""

# Whether a (date, player) of player_game_summary has a row in a stage. The date range inside the
# semi-join lets the warehouse skip the stage's other dates (DuckDB zone maps, BigQuery partitions).
_HAS_ROW = (
    "EXISTS (SELECT 1 FROM {{{table}}} AS s WHERE s.game_date BETWEEN @start AND @end "
    "AND s.game_date = p.game_date AND s.player_lookup = p.player_lookup)"
)

# Per date: players, bootstrap players, and who has a row in each stage (semi-joins: a stage's
# duplicate rows never inflate a count), beside each stage's row count (rows written by a backfill).
DAILY_SQL = f"""WITH played AS (
  SELECT game_date, player_lookup,
    ROW_NUMBER() OVER (PARTITION BY player_lookup, season ORDER BY game_date) - 1 AS history_games
  FROM (
    SELECT DISTINCT game_date, player_lookup, {SEASON_SQL} AS season
    FROM {{pgs}}
    WHERE game_date BETWEEN @history_start AND @end
  ) AS games
),
flags AS (
  SELECT p.game_date, p.history_games >= @min_history_games AS expected,
    {_HAS_ROW.format(table="mlfs")} AS has_mlfs,
    {_HAS_ROW.format(table="pred")} AS has_pred
  FROM played AS p
  WHERE p.game_date BETWEEN @start AND @end
),
per_date AS (
  SELECT game_date, COUNT(*) AS players_total, COUNTIF(NOT expected) AS bootstrap_players,
    COUNTIF(has_mlfs) AS mlfs_covered, COUNTIF(has_mlfs AND expected) AS mlfs_expected_covered,
    COUNTIF(has_pred) AS predictions_covered, COUNTIF(has_pred AND expected) AS predictions_expected_covered
  FROM flags
  GROUP BY game_date
),
mlfs_rows AS (SELECT game_date, COUNT(*) AS n FROM {{mlfs}} WHERE game_date BETWEEN @start AND @end GROUP BY game_date),
pred_rows AS (SELECT game_date, COUNT(*) AS n FROM {{pred}} WHERE game_date BETWEEN @start AND @end GROUP BY game_date)
SELECT d.*, COALESCE(mr.n, 0) AS mlfs_rows, COALESCE(rr.n, 0) AS predictions_rows
FROM per_date AS d
LEFT JOIN mlfs_rows AS mr ON mr.game_date = d.game_date
LEFT JOIN pred_rows AS rr ON rr.game_date = d.game_date"""

# The team's own player coverage: COUNT(DISTINCT covered) / COUNT(DISTINCT played) per month; the
# same answer as its LEFT JOIN query, by semi-joins that never multiply rows.
MONTHLY_PLAYERS_SQL = f"""WITH flags AS (
  SELECT p.game_date, p.player_lookup,
    {_HAS_ROW.format(table="mlfs")} AS has_mlfs,
    {_HAS_ROW.format(table="pred")} AS has_pred
  FROM (SELECT DISTINCT game_date, player_lookup FROM {{pgs}} WHERE game_date BETWEEN @start AND @end) AS p
)
SELECT FORMAT_DATE('%Y-%m', game_date) AS period,
  COUNT(DISTINCT player_lookup) AS players_total,
  COUNT(DISTINCT IF(has_mlfs, player_lookup, NULL)) AS mlfs_players_covered,
  COUNT(DISTINCT IF(has_pred, player_lookup, NULL)) AS predictions_players_covered
FROM flags
GROUP BY period"""

DATE_PLAYERS_SQL = f"""WITH {PLAYED_CTE}
SELECT p.player_lookup, p.player_name, p.team_abbr, p.history_games,
  m.player_lookup IS NOT NULL AS has_mlfs,
  COALESCE(r.systems, 0) AS prediction_systems
FROM played AS p
LEFT JOIN (SELECT DISTINCT player_lookup FROM {{mlfs}} WHERE game_date = @end) AS m
  ON m.player_lookup = p.player_lookup
LEFT JOIN (SELECT player_lookup, COUNT(DISTINCT system_id) AS systems FROM {{pred}}
  WHERE game_date = @end GROUP BY player_lookup) AS r
  ON r.player_lookup = p.player_lookup
WHERE p.game_date = @end
ORDER BY p.team_abbr, p.player_lookup"""

BOUNDS_SQL = "SELECT MIN(game_date) AS first_date, MAX(game_date) AS last_date FROM {pgs}"


def pct(covered: int, total: int) -> float | None:
    """Percentage with one decimal, rounded half up; never 100.0 short of complete, nor 0.0 above 0."""
    if not total:
        return None
    value = (2000 * covered + total) // (2 * total) / 10
    if covered < total and value >= 100.0:
        return 99.9
    if covered > 0 and value <= 0.0:
        return 0.1
    return value


def _ratio_pct(covered: pd.Series, total: pd.Series) -> pd.Series:
    """Unrounded percentages (NaN where the total is zero), for comparisons with thresholds."""
    return 100.0 * covered / total.where(total > 0)


def pct_column(covered: pd.Series, total: pd.Series) -> list[float | None]:
    """:func:`pct` of every row, computed with whole-column integer arithmetic."""
    c = np.asarray(covered, dtype="int64")
    t = np.asarray(total, dtype="int64")
    safe = np.where(t > 0, t, 1)
    value = ((2000 * c + safe) // (2 * safe)) / 10
    value = np.where((c < t) & (value >= 100.0), 99.9, value)
    value = np.where((c > 0) & (value <= 0.0), 0.1, value)
    return [float(v) if ok else None for v, ok in zip(value, t > 0)]


def data_bounds(warehouse: Warehouse) -> tuple[dt.date, dt.date] | None:
    """First and last game date of player_game_summary, or None when it is empty."""
    row = warehouse.query(BOUNDS_SQL).iloc[0]
    if pd.isna(row["first_date"]):
        return None
    return row["first_date"], row["last_date"]


def _range_params(settings: Settings, start: dt.date, end: dt.date) -> dict:
    return {
        "start": start,
        "end": end,
        "history_start": season_start(start),
        "min_history_games": settings.min_history_games,
    }


def daily_counts(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The counts behind daily coverage, one row per game date of the range (one statement)."""
    return warehouse.query(DAILY_SQL, _range_params(settings, start, end))


def daily_coverage(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per date of the range and stage, off days included (status ``no_games``)."""
    return daily_from_counts(daily_counts(warehouse, settings, start, end), settings, start, end)


def daily_from_counts(counts: pd.DataFrame, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Coverage, status, season and month of every (date, stage) from :func:`daily_counts` rows."""
    calendar = pd.DataFrame({"game_date": date_span(start, end)})
    counts = calendar.merge(counts, on="game_date", how="left").fillna(0)
    for column in counts.columns.drop("game_date"):
        counts[column] = counts[column].astype("int64")
    stamps = pd.to_datetime(counts["game_date"])
    season = (stamps.dt.year - (stamps.dt.month < 8)).astype("int64")
    period = stamps.dt.strftime("%Y-%m")
    frames = []
    for stage in STAGES:
        frame = pd.DataFrame(
            {
                "game_date": counts["game_date"],
                "stage": stage,
                "players_total": counts["players_total"],
                "players_covered": counts[f"{stage}_covered"],
                "bootstrap_players": counts["bootstrap_players"],
                "expected_total": counts["players_total"] - counts["bootstrap_players"],
                "expected_covered": counts[f"{stage}_expected_covered"],
                "table_rows": counts[f"{stage}_rows"],
                # MLFS beside predictions: the gate's input.
                "upstream_covered": counts["mlfs_covered"] if stage == "predictions" else np.nan,
                "season": season,
                "period": period,
            }
        )
        frame["player_game_coverage_pct"] = pct_column(frame["players_covered"], frame["players_total"])
        frame["expected_coverage_pct"] = pct_column(frame["expected_covered"], frame["expected_total"])
        frame["upstream_coverage_pct"] = (
            pct_column(frame["upstream_covered"], frame["players_total"]) if stage == "predictions" else None
        )
        frames.append(frame)
    daily = pd.concat(frames, ignore_index=True)
    daily["status"] = date_status(daily, settings)
    return daily


def upstream_ratio_pct(daily: pd.DataFrame) -> pd.Series:
    """Unrounded MLFS coverage beside predictions rows (the gate compares this, not the display)."""
    return _ratio_pct(daily["upstream_covered"], daily["players_total"])


def date_status(daily: pd.DataFrame, settings: Settings) -> pd.Series:
    """Status of each (date, stage) row from its counts (SPEC 3)."""
    pg_pct = _ratio_pct(daily["players_covered"], daily["players_total"])
    expected_pct = _ratio_pct(daily["expected_covered"], daily["expected_total"])
    expected_ok = (daily["expected_total"] == 0) | (expected_pct >= settings.ok_pct)
    gated = (daily["stage"] == "predictions") & (upstream_ratio_pct(daily) < settings.min_mlfs_coverage_pct)
    conditions = [
        daily["players_total"] == 0,
        expected_ok & (pg_pct >= settings.ok_pct),
        expected_ok,
        gated,
        daily["players_covered"] == 0,
    ]
    choices = ["no_games", "ok", "bootstrap", "blocked", "missing"]
    return pd.Series(np.select(conditions, choices, default="partial"), index=daily.index)


def monthly_player_counts(warehouse: Warehouse, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Distinct players per month, and those with a row in each stage (one statement)."""
    return warehouse.query(MONTHLY_PLAYERS_SQL, {"start": start, "end": end})


def monthly_coverage(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    daily: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per month and stage: the team's player coverage beside player-game figures."""
    if daily is None:
        daily = daily_coverage(warehouse, settings, start, end)
    return monthly_from(daily, monthly_player_counts(warehouse, start, end))


def monthly_from(daily: pd.DataFrame, players: pd.DataFrame) -> pd.DataFrame:
    """Monthly figures from daily coverage and :func:`monthly_player_counts` rows."""
    keys = ["period", "stage"]
    daily = daily.assign(
        game_day=daily["players_total"] > 0,
        severity=daily["status"].map(STATUSES.index),
        is_bootstrap=daily["status"] == "bootstrap",
    )
    monthly = (
        daily.groupby(keys, sort=False)
        .agg(
            season=("season", "first"),
            player_games_total=("players_total", "sum"),
            player_games_covered=("players_covered", "sum"),
            expected_total=("expected_total", "sum"),
            expected_covered=("expected_covered", "sum"),
            game_dates=("game_day", "sum"),
            severity=("severity", "min"),
            bootstrap_dates=("is_bootstrap", "sum"),
        )
        .reset_index()
    )
    monthly["status"] = [STATUSES[rank] for rank in monthly["severity"]]
    gaps = daily[daily["status"].isin(GAP_STATUSES)]
    listed = {
        key: [f"{day:%b %d} {status}" for day, status in zip(rows["game_date"], rows["status"])]
        for key, rows in gaps.groupby(keys, sort=False)
    }
    monthly["note"] = [
        _month_note(listed.get((period, stage), []), int(bootstrap), status)
        for period, stage, bootstrap, status in zip(
            monthly["period"], monthly["stage"], monthly["bootstrap_dates"], monthly["status"]
        )
    ]
    by_period = players.set_index("period")
    totals = by_period["players_total"].reindex(monthly["period"]).fillna(0).astype("int64").to_numpy()
    covered = [
        by_period[f"{stage}_players_covered"].get(period, 0)
        for period, stage in zip(monthly["period"], monthly["stage"])
    ]
    monthly["players_total"] = totals
    monthly["players_covered"] = np.asarray(covered, dtype="int64")
    monthly["player_coverage_pct"] = pct_column(monthly["players_covered"], monthly["players_total"])
    monthly["player_game_coverage_pct"] = pct_column(
        monthly["player_games_covered"], monthly["player_games_total"]
    )
    monthly["expected_coverage_pct"] = pct_column(monthly["expected_covered"], monthly["expected_total"])
    return monthly.drop(columns=["severity", "bootstrap_dates"])


def _month_note(gaps: list[str], bootstrap: int, status: str) -> str:
    """One line naming a month's gap dates, or why it has none."""
    if gaps:
        return f"{len(gaps)} gap date{'s' if len(gaps) > 1 else ''}: {', '.join(gaps)}"
    if bootstrap:
        return f"{bootstrap} early-season bootstrap date{'s' if bootstrap > 1 else ''} (expected)"
    return "no games" if status == "no_games" else "complete"


def date_players(warehouse: Warehouse, settings: Settings, day: dt.date) -> pd.DataFrame:
    """Every player of a date with their MLFS and prediction state and, where missing, why."""
    params = _range_params(settings, day, day)
    players = warehouse.query(DATE_PLAYERS_SQL, params)
    if players.empty:
        return players.assign(has_prediction=[], reason=[])
    mlfs_pct = 100.0 * players["has_mlfs"].mean()
    players["has_prediction"] = players["prediction_systems"] > 0
    bootstrap = players["history_games"] < settings.min_history_games
    gate_failed = mlfs_pct < settings.min_mlfs_coverage_pct
    conditions = [
        ~players["has_mlfs"],
        bootstrap & ~players["has_prediction"],
        ~players["has_prediction"] & gate_failed,
        ~players["has_prediction"],
    ]
    reasons = [
        pd.Series("no MLFS row", index=players.index),
        "bootstrap: " + players["history_games"].astype(str) + " earlier games this season",
        pd.Series(
            f"blocked upstream: MLFS covers {mlfs_pct:.1f}% of the date "
            f"(gate {settings.min_mlfs_coverage_pct:g}%)",
            index=players.index,
        ),
        pd.Series("MLFS row but no prediction", index=players.index),
    ]
    players["reason"] = np.select(conditions, reasons, default="")
    return players


def missing_players(warehouse: Warehouse, settings: Settings, day: dt.date) -> pd.DataFrame:
    """Players of a date lacking an MLFS row or a prediction, with the reason."""
    players = date_players(warehouse, settings, day)
    return players[players["reason"] != ""].reset_index(drop=True)
