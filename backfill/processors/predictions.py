"""Predictions: points per player per game date, one row per configured prediction system.

The models are deliberately simple and transparent, computed from the date's MLFS row only:

- ``weighted_form``: 0.5 x last-5 average + 0.3 x last-10 average + 0.2 x season average;
- ``minutes_rate``: expected minutes (last-5 average) x points per minute over the last 10 games.

Bootstrap players (fewer than ``min_history_games`` prior games) get no prediction, and neither do
MLFS rows without a player_game_summary row (orphans), so a backfill never writes a stale row.
"""

from typing import Any

from backfill.errors import BadInput
from backfill.warehouse.schema import PLAYER_PROP_PREDICTIONS

COLUMNS = PLAYER_PROP_PREDICTIONS.column_names
"""The columns this statement writes: every column of the demo's table (a production table's
other columns are checked before a run)."""

SYSTEMS = {
    "weighted_form": "0.5 * f.points_avg_last_5 + 0.3 * f.points_avg_last_10 + 0.2 * f.points_avg_season",
    "minutes_rate": "f.minutes_avg_last_5 * SAFE_DIVIDE(f.points_avg_last_10, f.minutes_avg_last_10)",
}
"""Formula of each known prediction system (code, not input: systems are chosen by name)."""

_FORMULA = (
    "CASE s.system_id "
    + " ".join(f"WHEN '{system}' THEN {formula}" for system, formula in SYSTEMS.items())
    + " END"
)

INSERT = f"""INSERT INTO {{target}} ({", ".join(COLUMNS)})
SELECT f.game_date, f.player_lookup, s.system_id,
  ROUND(COALESCE({_FORMULA}, f.points_avg_season, 0.0), 2),
  @model_version, f.processed_at, @processed_at
FROM (
  SELECT * FROM {{upstream}}
  WHERE game_date IN UNNEST(@dates)
  QUALIFY ROW_NUMBER() OVER (PARTITION BY game_date, player_lookup ORDER BY processed_at DESC) = 1
) AS f
JOIN (
  SELECT DISTINCT game_date, player_lookup FROM {{reference}}
  WHERE game_date IN UNNEST(@dates)
) AS played ON played.game_date = f.game_date AND played.player_lookup = f.player_lookup
CROSS JOIN (SELECT system_id FROM UNNEST(@systems) AS system_id) AS s
WHERE f.history_games >= @min_history_games"""


DEFAULT_SYSTEMS = ("weighted_form", "minutes_rate")


def check_options(spec: dict, where: str) -> tuple[str, ...]:
    """The prediction systems to write, checked when the pipeline file is read (before any write)."""
    systems = spec.get("systems", list(DEFAULT_SYSTEMS))
    if not isinstance(systems, list) or not systems or not all(isinstance(s, str) for s in systems):
        raise BadInput(f"{where}.systems must be a non-empty list of names")
    unknown = [system for system in systems if system not in SYSTEMS]
    if unknown:
        raise BadInput(
            f"{where}.systems: unknown prediction system {unknown[0]!r} (known: {', '.join(SYSTEMS)})"
        )
    return tuple(dict.fromkeys(systems))


def params(stage: Any) -> dict:
    return {
        "model_version": stage.current_version or "",
        "systems": list(stage.processor.systems),
        "min_history_games": stage.bootstrap_min_history,
    }
