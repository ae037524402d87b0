"""Worst first: the months of an incident ordered so the operator reads the worst at the top."""

from __future__ import annotations

import pandas as pd

from backfill.coverage import GAP_STATUSES, STATUSES


def worst_months_first(monthly: pd.DataFrame) -> pd.DataFrame:
    """The (month, stage) rows of :func:`backfill.coverage.monthly_coverage` that have a gap (a date
    missing, blocked or partial): the most severe status first, then the lowest player-game coverage,
    then the oldest month."""
    gaps = monthly[monthly["status"].isin(GAP_STATUSES)]
    ranked = gaps.assign(_severity=gaps["status"].map(STATUSES.index))
    ordered = ranked.sort_values(["_severity", "player_game_coverage_pct", "period", "stage"], kind="stable")
    return ordered.drop(columns="_severity").reset_index(drop=True)
