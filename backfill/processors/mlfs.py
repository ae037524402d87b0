"""The feature store (MLFS): one row per player per game date, from games strictly before it.

Features are rolling averages over the player's previous 5 and 10 games of the season, the season
average so far, rest days since the previous game and the number of games in history. The window
frames end at ``1 PRECEDING``, so a date's own game never leaks into its features.
``source_processed_at`` is the newest upstream ``processed_at`` the row depends on, the date's own
player_game_summary row included, which is how outdated rows are recognised later.
"""

from typing import Any

from backfill.seasons import SEASON_SQL
from backfill.warehouse.schema import ML_FEATURE_STORE

COLUMNS = ML_FEATURE_STORE.column_names
"""The columns this statement writes: every column of the demo's table (a production table's
other columns are checked before a run)."""

_PRIOR = "PARTITION BY player_lookup, season ORDER BY game_date ROWS BETWEEN {} PRECEDING AND 1 PRECEDING"

INSERT = f"""INSERT INTO {{target}} ({", ".join(COLUMNS)})
SELECT game_date, player_lookup, team_abbr,
  points_avg_last_5, points_avg_last_10, minutes_avg_last_5, minutes_avg_last_10, points_avg_season,
  rest_days, history_games, @feature_version, source_processed_at, @processed_at
FROM (
  SELECT game_date, player_lookup, team_abbr,
    AVG(points) OVER ({_PRIOR.format(5)}) AS points_avg_last_5,
    AVG(points) OVER ({_PRIOR.format(10)}) AS points_avg_last_10,
    AVG(minutes_played) OVER ({_PRIOR.format(5)}) AS minutes_avg_last_5,
    AVG(minutes_played) OVER ({_PRIOR.format(10)}) AS minutes_avg_last_10,
    AVG(points) OVER ({_PRIOR.format("UNBOUNDED")}) AS points_avg_season,
    DATE_DIFF(game_date, LAG(game_date) OVER (PARTITION BY player_lookup, season ORDER BY game_date), DAY)
      AS rest_days,
    COUNT(*) OVER ({_PRIOR.format("UNBOUNDED")}) AS history_games,
    MAX(processed_at) OVER (
      PARTITION BY player_lookup, season ORDER BY game_date
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS source_processed_at
  FROM (
    SELECT game_date, player_lookup, {SEASON_SQL} AS season,
      MAX(team_abbr) AS team_abbr, MAX(points) AS points, MAX(minutes_played) AS minutes_played,
      MAX(processed_at) AS processed_at
    FROM {{upstream}}
    WHERE game_date BETWEEN @history_start AND @end
    GROUP BY game_date, player_lookup
  ) AS games
) AS features
WHERE game_date IN UNNEST(@dates)"""


def check_options(spec: dict, where: str) -> tuple[str, ...]:
    """No options beyond the stage's own fields."""
    if "systems" in spec:
        from backfill.errors import BadInput

        raise BadInput(f"{where}.systems is for the predictions statement, not mlfs")
    return ()


def params(stage: Any) -> dict:
    return {"feature_version": stage.current_version or ""}
