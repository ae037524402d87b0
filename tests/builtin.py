"""The built-in demo pipeline's statements, by the names tests use for them."""

from __future__ import annotations

import datetime as dt

from backfill import coverage, stale
from backfill.config import Settings
from backfill.pipeline import builtin_pipeline
from backfill.processors.sql import SqlProcessor
from backfill.warehouse import Warehouse

PIPELINE = builtin_pipeline()
STAGES = PIPELINE.stage_names
TABLES = {name: PIPELINE.stage(name).table for name in STAGES}
"""Table name of each stage: ``{"mlfs": "ml_feature_store", ...}``."""

DAILY_SQL = coverage.daily_sql(PIPELINE)
MONTHLY_PLAYERS_SQL = coverage.monthly_players_sql(PIPELINE)
STALE_FLAGGED = {name: stale.flagged_sql(PIPELINE, PIPELINE.stage(name)) for name in STAGES}
STALE_COUNTS_SQL = stale.counts_sql(PIPELINE, STAGES)
STALE_DELETE_SQL = stale.delete_sql(PIPELINE, STAGES)


def processor(stage: str, settings: Settings | None = None) -> SqlProcessor:
    pipeline = (settings or Settings()).pipeline
    return SqlProcessor(pipeline.stage(stage), pipeline)


def replace_script(stage: str, settings: Settings | None = None) -> str:
    return processor(stage, settings).script()


def replace_params(stage: str, dates: list[dt.date], settings: Settings | None, now: dt.datetime) -> dict:
    return processor(stage, settings).params(dates, now)


def with_bootstrap(settings: Settings, min_history: int) -> Settings:
    """Settings whose every stage takes another bootstrap rule (0: nobody is a bootstrap player)."""
    pipeline = settings.pipeline
    for name in pipeline.stage_names:
        pipeline = pipeline.with_stage(name, bootstrap_min_history=min_history)
    return settings.replace(pipeline=pipeline)


def with_version(settings: Settings, stage: str, version: str) -> Settings:
    """Settings whose stage takes another current version (old_version stale rows)."""
    return settings.replace(pipeline=settings.pipeline.with_stage(stage, current_version=version))


PLAYERS_ON_A_DATE = "SELECT COUNT(DISTINCT player_lookup) AS n FROM {played} WHERE game_date = @d"
"""Players of a date, counted straight from the reference table (independent of the coverage SQL)."""


def thin_date_mlfs_pct(players: int) -> float:
    """MLFS coverage of the demo's thin date, from the demo's recipe: of the date's ``players``,
    ``int(players * THIN_MLFS_SHARE)`` keep their MLFS row."""
    from backfill.demo import THIN_MLFS_SHARE

    return 100 * int(players * THIN_MLFS_SHARE) / players


def thin_date_players(warehouse: Warehouse) -> int:
    """Players of the demo's thin MLFS date, counted straight from the reference table."""
    from backfill.demo import THIN_MLFS_DATE

    return int(warehouse.query(PLAYERS_ON_A_DATE, {"d": THIN_MLFS_DATE})["n"].iloc[0])


def thin_date_gate_reason(players: int) -> str:
    """The gate's words on the demo's thin MLFS date (a run's item), from the demo's recipe."""
    return f"MLFS covers {thin_date_mlfs_pct(players):.1f}%, below the 90% gate"
