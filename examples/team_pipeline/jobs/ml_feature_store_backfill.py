"""The team's MLFS backfill: features per player per game date, from games strictly before it.

    python jobs/ml_feature_store_backfill.py --dates 2021-12-01,2021-12-02 [--warehouse FILE]

For every player who played on a date: rolling points and minutes averages over their previous 5 and
10 games of the season, the season average so far, rest days and the games in history. All dates
are computed in one set-based statement (window functions over the season's look-back) and written
with MERGE on (game_date, player_lookup), as the team's job does: rows the MERGE does not match,
such as a renamed player's old rows, stay behind (the console's clean_stale deletes them).
"""

from __future__ import annotations

import team_common as team

JOB = "mlfs"
FEATURE_VERSION = "features_v3"
TARGET = "nba_precompute.ml_feature_store"
KEY = ("game_date", "player_lookup")
COLUMNS = (
    "game_date", "player_lookup", "team_abbr", "points_avg_last_5", "points_avg_last_10",
    "minutes_avg_last_5", "minutes_avg_last_10", "points_avg_season", "rest_days", "history_games",
    "feature_version", "source_processed_at", "processed_at",
)  # fmt: skip

_PRIOR = "PARTITION BY player_lookup, season ORDER BY game_date ROWS BETWEEN {} PRECEDING AND 1 PRECEDING"

FEATURES_SQL = f"""
SELECT game_date, player_lookup, team_abbr, points_avg_last_5, points_avg_last_10, minutes_avg_last_5,
  minutes_avg_last_10, points_avg_season, rest_days, history_games,
  $feature_version AS feature_version, source_processed_at, $processed_at AS processed_at
FROM (
  SELECT game_date, player_lookup, team_abbr,
    avg(points) OVER ({_PRIOR.format(5)}) AS points_avg_last_5,
    avg(points) OVER ({_PRIOR.format(10)}) AS points_avg_last_10,
    avg(minutes_played) OVER ({_PRIOR.format(5)}) AS minutes_avg_last_5,
    avg(minutes_played) OVER ({_PRIOR.format(10)}) AS minutes_avg_last_10,
    avg(points) OVER ({_PRIOR.format("UNBOUNDED")}) AS points_avg_season,
    date_diff('day', lag(game_date) OVER (PARTITION BY player_lookup, season ORDER BY game_date), game_date)
      AS rest_days,
    count(*) OVER ({_PRIOR.format("UNBOUNDED")}) AS history_games,
    max(processed_at) OVER (PARTITION BY player_lookup, season ORDER BY game_date
      ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS source_processed_at
  FROM (
    SELECT game_date, player_lookup, {team.SEASON_SQL} AS season, max(team_abbr) AS team_abbr,
      max(points) AS points, max(minutes_played) AS minutes_played, max(processed_at) AS processed_at
    FROM nba_analytics.player_game_summary
    WHERE game_date BETWEEN $history_start AND $end
    GROUP BY game_date, player_lookup
  ) AS games
) AS features
WHERE list_contains($dates, game_date)
"""


def main() -> int:
    parser = team.parser("Backfill the ML feature store for some game dates (the team's job).")
    args = parser.parse_args()
    dates = team.parse_dates(parser, args.dates)
    path = team.warehouse_path(args.warehouse)
    team.progress(JOB, f"computing features for {len(dates)} dates, {dates[0]} to {dates[-1]}")
    connection = team.connect(path, JOB)
    try:
        params = {
            "dates": dates,
            "history_start": team.season_start(dates[0]),
            "end": dates[-1],
            "feature_version": FEATURE_VERSION,
            "processed_at": team.now_utc(),
        }
        written = team.write_batch(connection, JOB, FEATURES_SQL, params, TARGET, KEY, COLUMNS)
    finally:
        connection.close()
    for day in dates:
        team.outcome(day, "done", rows=written.get(day, 0))
    team.progress(JOB, f"done: {sum(written.values()):,} rows on {len(written)} dates with games")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
