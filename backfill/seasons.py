"""NBA seasons: a season runs from August 1 to July 31 and is named by its starting year.

Features and bootstrap status look back over the player's earlier games of the same season, so a
season boundary is where every player's history starts again (the early-season bootstrap dates).
"""

from __future__ import annotations

import datetime as dt

SEASON_SQL = "EXTRACT(YEAR FROM game_date) - IF(EXTRACT(MONTH FROM game_date) < 8, 1, 0)"
"""GoogleSQL expression of the season (starting year) of ``game_date``."""


def season_of(day: dt.date) -> int:
    """Starting year of the season that ``day`` belongs to (2021 for 2021-22)."""
    return day.year if day.month >= 8 else day.year - 1


def season_start(day: dt.date) -> dt.date:
    """First day of the season of ``day``: the start of every look-back window in it."""
    return dt.date(season_of(day), 8, 1)


def season_label(season: int) -> str:
    """Display name of a season: ``2021-22``."""
    return f"{season}-{(season + 1) % 100:02d}"
