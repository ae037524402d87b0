"""Worst first: the months of an incident ordered so the operator reads the worst at the top."""

from __future__ import annotations

import pandas as pd

from backfill.coverage import GAP_STATUSES, STATUSES


def not_yet_backfilled(monthly: pd.DataFrame) -> list[str]:
    """Stages with not one row over the whole period though players played: a new stage no one has
    backfilled yet. That is one fact, told once, not a gap in every month."""
    if monthly.empty:
        return []
    totals = monthly.groupby("stage", sort=False)[["player_games_covered", "player_games_total"]].sum()
    return [
        str(stage)
        for stage, row in totals.iterrows()
        if row["player_games_covered"] == 0 and row["player_games_total"] > 0
    ]


def worst_months_first(monthly: pd.DataFrame) -> pd.DataFrame:
    """The (month, stage) rows of :func:`backfill.coverage.monthly_coverage` that have a gap (a date
    missing, blocked or partial): the most severe status first, then the lowest player-game coverage,
    then the oldest month. Stages not yet backfilled at all (:func:`not_yet_backfilled`) are left
    out: their empty months would bury the incidents."""
    new = not_yet_backfilled(monthly)
    gaps = monthly[monthly["status"].isin(GAP_STATUSES) & ~monthly["stage"].isin(new)]
    ranked = gaps.assign(_severity=gaps["status"].map(STATUSES.index))
    ordered = ranked.sort_values(["_severity", "player_game_coverage_pct", "period", "stage"], kind="stable")
    return ordered.drop(columns="_severity").reset_index(drop=True)
