"""The team's grading backfill: each prediction graded against the points actually scored.

    python jobs/prediction_grades_backfill.py --dates 2021-12-01,2021-12-02 [--warehouse FILE]

For every prediction of the dates (the newest row of each player and system) of a player who
played: the points scored (player_game_summary), the absolute error and whether the player went
over. ``prediction_created_at`` keeps which prediction was graded, so a grade of a prediction that
was replaced since is recognised as outdated. All dates in one set-based statement, written with
MERGE on (game_date, player_lookup, system_id), like the team's other jobs.
"""

from __future__ import annotations

import team_common as team

JOB = "grading"
GRADE_VERSION = "grades_v1"
TARGET = "nba_predictions.prediction_grades"
KEY = ("game_date", "player_lookup", "system_id")
COLUMNS = (
    "game_date", "player_lookup", "system_id", "predicted_points", "actual_points", "absolute_error",
    "went_over", "grade_version", "prediction_created_at", "graded_at",
)  # fmt: skip

GRADES_SQL = """
SELECT pr.game_date, pr.player_lookup, pr.system_id, pr.predicted_points, g.points AS actual_points,
  abs(g.points - pr.predicted_points) AS absolute_error, g.points > pr.predicted_points AS went_over,
  $grade_version AS grade_version, pr.created_at AS prediction_created_at, $graded_at AS graded_at
FROM (
  SELECT * FROM nba_predictions.player_prop_predictions
  WHERE list_contains($dates, game_date) AND predicted_points IS NOT NULL
  QUALIFY row_number() OVER (PARTITION BY game_date, player_lookup, system_id ORDER BY created_at DESC) = 1
) AS pr
JOIN (SELECT game_date, player_lookup, max(points) AS points FROM nba_analytics.player_game_summary
      WHERE list_contains($dates, game_date) GROUP BY game_date, player_lookup) AS g
  ON g.game_date = pr.game_date AND g.player_lookup = pr.player_lookup
"""


def main() -> int:
    parser = team.parser(
        "Grade the predictions of some game dates against the points scored (the team's job)."
    )
    args = parser.parse_args()
    dates = team.parse_dates(parser, args.dates)
    path = team.warehouse_path(args.warehouse)
    team.progress(JOB, f"grading {len(dates)} dates, {dates[0]} to {dates[-1]}")
    connection = team.connect(path, JOB)
    try:
        params = {"dates": dates, "grade_version": GRADE_VERSION, "graded_at": team.now_utc()}
        written = team.write_batch(connection, JOB, GRADES_SQL, params, TARGET, KEY, COLUMNS)
    finally:
        connection.close()
    for day in dates:
        team.outcome(day, "done", rows=written.get(day, 0))
    team.progress(JOB, f"done: {sum(written.values()):,} grades on {len(written)} dates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
