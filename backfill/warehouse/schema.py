"""The demo's three tables: their dataset role, columns (GoogleSQL types) and keys.

What the demo builds; the console itself knows stages only through the pipeline file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Table:
    """One warehouse table: ``role`` picks its dataset from the settings."""

    name: str
    role: str
    columns: tuple[tuple[str, str], ...]
    key: tuple[str, ...]
    required: tuple[str, ...]

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)


PLAYER_GAME_SUMMARY = Table(
    name="player_game_summary",
    role="analytics",
    columns=(
        ("game_date", "DATE"),
        ("player_lookup", "STRING"),
        ("player_name", "STRING"),
        ("game_id", "STRING"),
        ("team_abbr", "STRING"),
        ("opponent_abbr", "STRING"),
        ("is_home", "BOOL"),
        ("minutes_played", "FLOAT64"),
        ("points", "INT64"),
        ("processed_at", "TIMESTAMP"),
    ),
    key=("game_date", "player_lookup"),
    required=("game_date", "player_lookup", "game_id", "team_abbr", "processed_at"),
)

ML_FEATURE_STORE = Table(
    name="ml_feature_store",
    role="precompute",
    columns=(
        ("game_date", "DATE"),
        ("player_lookup", "STRING"),
        ("team_abbr", "STRING"),
        ("points_avg_last_5", "FLOAT64"),
        ("points_avg_last_10", "FLOAT64"),
        ("minutes_avg_last_5", "FLOAT64"),
        ("minutes_avg_last_10", "FLOAT64"),
        ("points_avg_season", "FLOAT64"),
        ("rest_days", "INT64"),
        ("history_games", "INT64"),
        ("feature_version", "STRING"),
        ("source_processed_at", "TIMESTAMP"),
        ("processed_at", "TIMESTAMP"),
    ),
    key=("game_date", "player_lookup"),
    required=(
        "game_date",
        "player_lookup",
        "history_games",
        "feature_version",
        "source_processed_at",
        "processed_at",
    ),
)

PLAYER_PROP_PREDICTIONS = Table(
    name="player_prop_predictions",
    role="predictions",
    columns=(
        ("game_date", "DATE"),
        ("player_lookup", "STRING"),
        ("system_id", "STRING"),
        ("predicted_points", "FLOAT64"),
        ("model_version", "STRING"),
        ("feature_processed_at", "TIMESTAMP"),
        ("created_at", "TIMESTAMP"),
    ),
    key=("game_date", "player_lookup", "system_id"),
    required=(
        "game_date",
        "player_lookup",
        "system_id",
        "predicted_points",
        "model_version",
        "feature_processed_at",
        "created_at",
    ),
)

TABLES: dict[str, Table] = {
    table.name: table for table in (PLAYER_GAME_SUMMARY, ML_FEATURE_STORE, PLAYER_PROP_PREDICTIONS)
}
"""Every table by name, upstream first."""

SQL_ALIASES = {"pgs": PLAYER_GAME_SUMMARY, "mlfs": ML_FEATURE_STORE, "pred": PLAYER_PROP_PREDICTIONS}
"""Short names that SQL templates use as ``{pgs}``, ``{mlfs}``, ``{pred}``."""
