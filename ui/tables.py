"""Tables for people: the team's monthly hand-off table, missing players, headline figures."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from backfill.coverage import GAP_STATUSES, pct
from backfill.seasons import season_label
from backfill.severity import worst_months_first
from ui.format import of_text

MONTHLY_COLUMNS = {
    "period": "Period",
    "season_label": "Season",
    "coverage_pct": "Coverage %",
    "covered_of_total": "Covered / total",
    "expected_coverage_pct": "Expected %",
    "player_coverage_pct": "Players %",
    "players_of_total": "Players covered / total",
    "status": "Status",
    "note": "Note",
}
"""Columns of the team's monthly table and their headings."""


def monthly_table(monthly: pd.DataFrame, stage: str) -> pd.DataFrame:
    """The team's hand-off table for one stage: one row per month, headings as people read them.

    "Coverage %" is player-game coverage, the console's main number (SPEC 3). The team's own player
    coverage ("Players %") sits beside it: it counts a player once a month, so a month can read
    100.0 while whole dates are missing.
    """
    rows = monthly[monthly["stage"] == stage]
    table = pd.DataFrame(
        {
            "period": rows["period"],
            "season_label": [season_label(int(season)) for season in rows["season"]],
            "coverage_pct": rows["player_game_coverage_pct"],
            "covered_of_total": [
                of_text(c, t) for c, t in zip(rows["player_games_covered"], rows["player_games_total"])
            ],
            "expected_coverage_pct": rows["expected_coverage_pct"],
            "player_coverage_pct": rows["player_coverage_pct"],
            "players_of_total": [
                of_text(c, t) for c, t in zip(rows["players_covered"], rows["players_total"])
            ],
            "status": rows["status"],
            "note": rows["note"],
        }
    )
    return table.sort_values("period").rename(columns=MONTHLY_COLUMNS).reset_index(drop=True)


def gap_dates(daily: pd.DataFrame) -> pd.DataFrame:
    """(date, stage) rows whose status is a real gap: missing, blocked or partial."""
    return (
        daily[daily["status"].isin(GAP_STATUSES)].sort_values(["game_date", "stage"]).reset_index(drop=True)
    )


def expected_coverage(daily: pd.DataFrame, stage: str) -> float | None:
    """Expected coverage of a stage over every date of ``daily``."""
    rows = daily[daily["stage"] == stage]
    return pct(int(rows["expected_covered"].sum()), int(rows["expected_total"].sum()))


def game_days(daily: pd.DataFrame) -> list[dt.date]:
    """Dates that had games."""
    return sorted(set(daily.loc[daily["players_total"] > 0, "game_date"]))


MISSING_COLUMNS = {
    "player_name": "Player",
    "team_abbr": "Team",
    "reason": "Reason",
    "history_games": "Earlier games",
}
"""Columns of the missing-players table, the reason early so that it is seen without scrolling; then
one column per stage with the player's rows in it."""


def missing_players_table(players: pd.DataFrame, stage_labels: dict[str, str]) -> pd.DataFrame:
    """Missing players of a date with readable headings, grouped by reason."""
    columns = MISSING_COLUMNS | {f"rows_{name}": f"{label} rows" for name, label in stage_labels.items()}
    table = players[list(columns)].sort_values(["reason", "team_abbr", "player_name"])
    return table.rename(columns=columns).reset_index(drop=True)


WORST_MONTH_COLUMNS = {
    "period": "Period",
    "stage": "Stage",
    "status": "Status",
    "coverage_pct": "Coverage %",
    "covered_of_total": "Covered / total",
    "note": "Gap dates",
}
"""Columns of the months-with-gaps table, the status early so that it is seen at a glance."""


def worst_months_table(monthly: pd.DataFrame, stage_labels: dict[str, str]) -> pd.DataFrame:
    """Months with a gap in any stage, worst first (:func:`backfill.severity.worst_months_first`)."""
    rows = worst_months_first(monthly)
    table = pd.DataFrame(
        {
            "period": rows["period"],
            "stage": [stage_labels.get(stage, stage) for stage in rows["stage"]],
            "status": rows["status"],
            "coverage_pct": rows["player_game_coverage_pct"],
            "covered_of_total": [
                of_text(c, t) for c, t in zip(rows["player_games_covered"], rows["player_games_total"])
            ],
            "note": rows["note"],
        }
    )
    return table.rename(columns=WORST_MONTH_COLUMNS).reset_index(drop=True)
