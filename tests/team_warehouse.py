"""A team's own warehouse for first-day tests: the demo's rows copied into tables the team made.

The copy is made with plain DuckDB (``CREATE TABLE ... AS SELECT``), as a team would load its own
data, so it carries none of the demo's marks; model and feature versions are the team's own.
Checksums are independent SQL over every row, so a test can say "nothing was written".
"""

from __future__ import annotations

from pathlib import Path

import duckdb

TEAM_TABLES = (
    "nba_analytics.player_game_summary",
    "nba_precompute.ml_feature_store",
    "nba_predictions.player_prop_predictions",
)
TEAM_MODEL_VERSION, TEAM_FEATURE_VERSION = "team_model_7", "team_features_9"


def copy_as_team_data(demo_file: Path, target: Path) -> Path:
    """A new DuckDB file at ``target`` with the demo's three tables copied row by row, and the
    team's own model and feature versions."""
    target.unlink(missing_ok=True)
    with duckdb.connect(str(target)) as connection:
        connection.execute(f"ATTACH '{demo_file}' AS demo (READ_ONLY)")
        for table in TEAM_TABLES:
            schema = table.split(".")[0]
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            connection.execute(f"CREATE TABLE {table} AS SELECT * FROM demo.{table}")
        connection.execute("DETACH demo")
        connection.execute(
            "UPDATE nba_predictions.player_prop_predictions SET model_version = $v", {"v": TEAM_MODEL_VERSION}
        )
        connection.execute(
            "UPDATE nba_precompute.ml_feature_store SET feature_version = $v", {"v": TEAM_FEATURE_VERSION}
        )
    return target


def checksums(
    warehouse: Path, tables: tuple[str, ...] = TEAM_TABLES, *, read_only: bool = True
) -> dict[str, tuple[int, str]]:
    """(rows, MD5 of every row's text in order) of each table: equal before and after means untouched.
    ``read_only=False`` opens the file as the console does, so a test in the process that ran the
    console in-process may share it."""
    found = {}
    with duckdb.connect(str(warehouse), read_only=read_only) as connection:
        for table in tables:
            found[table] = connection.execute(
                f"SELECT COUNT(*), md5(COALESCE(string_agg(CAST(t AS VARCHAR), '|' ORDER BY CAST(t AS VARCHAR)), '')) "
                f"FROM {table} AS t"
            ).fetchone()
    return found
