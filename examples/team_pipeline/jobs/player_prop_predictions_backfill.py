"""The team's predictions backfill: points per player, game date and prediction system.

    python jobs/player_prop_predictions_backfill.py --dates 2021-12-07,2021-12-09
        [--skip-mlfs-check] [--min-mlfs-coverage PCT] [--warehouse FILE]

Predictions come from the date's MLFS row (its newest one), for players with at least three earlier
games this season (bootstrap players get none), one row per system. Before predicting, the job checks
that MLFS covers at least ``--min-mlfs-coverage`` percent (default 90) of the date's players, as the
team's own script does; a date below it is reported failed and left alone. All dates that pass are
computed in one set-based statement and written with MERGE on (game_date, player_lookup, system_id),
so duplicates and orphans already in the table stay behind (the console's clean_stale deletes them).

With ``TEAM_JOB_FLAKY_FIRST=1`` the first attempt at each batch dies with the team's BigQuery timeout
(see ``team_common.maybe_time_out``), which the console classifies as transient and retries.
"""

from __future__ import annotations

import os

import team_common as team

JOB = "predictions"
MODEL_VERSION = "form_v2"
MIN_HISTORY_GAMES = 3
TARGET = "nba_predictions.player_prop_predictions"
KEY = ("game_date", "player_lookup", "system_id")
COLUMNS = (
    "game_date", "player_lookup", "system_id", "predicted_points", "model_version",
    "feature_processed_at", "created_at",
)  # fmt: skip

SYSTEMS = {
    "weighted_form": "0.5 * f.points_avg_last_5 + 0.3 * f.points_avg_last_10 + 0.2 * f.points_avg_season",
    "minutes_rate": "f.minutes_avg_last_5 * (f.points_avg_last_10 / nullif(f.minutes_avg_last_10, 0))",
}

MLFS_COVERAGE_SQL = """
SELECT p.game_date, count(*) AS players, count(f.player_lookup) AS with_features
FROM (SELECT DISTINCT game_date, player_lookup FROM nba_analytics.player_game_summary
      WHERE list_contains($dates, game_date)) AS p
LEFT JOIN (SELECT DISTINCT game_date, player_lookup FROM nba_precompute.ml_feature_store
      WHERE list_contains($dates, game_date)) AS f
  ON f.game_date = p.game_date AND f.player_lookup = p.player_lookup
GROUP BY p.game_date
"""

_FORMULA = "CASE s.system_id " + " ".join(f"WHEN '{k}' THEN {v}" for k, v in SYSTEMS.items()) + " END"

PREDICTIONS_SQL = f"""
SELECT f.game_date, f.player_lookup, s.system_id,
  round(coalesce({_FORMULA}, f.points_avg_season, 0.0), 2) AS predicted_points,
  $model_version AS model_version, f.processed_at AS feature_processed_at, $created_at AS created_at
FROM (
  SELECT * FROM nba_precompute.ml_feature_store
  WHERE list_contains($dates, game_date)
  QUALIFY row_number() OVER (PARTITION BY game_date, player_lookup ORDER BY processed_at DESC) = 1
) AS f
JOIN (SELECT DISTINCT game_date, player_lookup FROM nba_analytics.player_game_summary
      WHERE list_contains($dates, game_date)) AS played
  ON played.game_date = f.game_date AND played.player_lookup = f.player_lookup
CROSS JOIN (SELECT unnest($systems) AS system_id) AS s
WHERE f.history_games >= $min_history_games
"""


def main() -> int:
    parser = team.parser("Backfill player prop predictions for some game dates (the team's job).")
    # Run by the console, the run's own gate arrives in the environment; by hand, as flags.
    parser.add_argument(
        "--skip-mlfs-check",
        action="store_true",
        default=os.environ.get("BACKFILL_SKIP_GATES") == "1",
        help="predict even where MLFS covers too few players (default: BACKFILL_SKIP_GATES=1)",
    )
    parser.add_argument(
        "--min-mlfs-coverage",
        type=float,
        default=float(os.environ.get("BACKFILL_MIN_UPSTREAM_COVERAGE_PCT") or 90.0),
        metavar="PCT",
        help="least MLFS coverage of a date's players, in percent "
        "(default: BACKFILL_MIN_UPSTREAM_COVERAGE_PCT, else 90)",
    )
    args = parser.parse_args()
    if not 0 <= args.min_mlfs_coverage <= 100:
        parser.error(f"--min-mlfs-coverage must be from 0 to 100, got {args.min_mlfs_coverage:g}")
    dates = team.parse_dates(parser, args.dates)
    path = team.warehouse_path(args.warehouse)
    team.progress(JOB, f"predicting {len(dates)} dates, {dates[0]} to {dates[-1]}")
    connection = team.connect(path, JOB)
    try:
        ready = []
        measured = connection.execute(MLFS_COVERAGE_SQL, {"dates": dates}).fetchall()
        with_games = {row[0] for row in measured}
        for day, players, with_features in measured:
            coverage = 100.0 * with_features / players
            if args.skip_mlfs_check or coverage >= args.min_mlfs_coverage:
                ready.append(day)
                continue
            team.outcome(
                day,
                "failed",
                error=f"MLFS covers {coverage:.1f}% of the date's players, below {args.min_mlfs_coverage:g}% "
                "(backfill MLFS first, or pass --skip-mlfs-check)",
            )
        team.progress(JOB, f"MLFS check: {len(ready)} dates ready")
        team.maybe_time_out(JOB, dates)
        written = {}
        if ready:
            params = {
                "dates": sorted(ready),
                "systems": list(SYSTEMS),
                "model_version": MODEL_VERSION,
                "min_history_games": MIN_HISTORY_GAMES,
                "created_at": team.now_utc(),
            }
            written = team.write_batch(connection, JOB, PREDICTIONS_SQL, params, TARGET, KEY, COLUMNS)
    finally:
        connection.close()
    for day in dates:
        if day in ready or day not in with_games:  # a date without games has nothing to predict
            team.outcome(day, "done", rows=written.get(day, 0))
    team.progress(JOB, f"done: {sum(written.values()):,} rows on {len(written)} dates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
