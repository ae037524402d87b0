"""Season calendars and game schedules for the demo warehouse.

Real NBA shape: the regular season starts on the third-week Tuesday of October and ends mid-April;
no games on Thanksgiving, Christmas Eve or during the All-Star break; 7-12 games on a typical day,
more on weekends, and each of the 30 teams plays 82 games (1,230 games a season).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

TEAMS = (
    "ATL", "BOS", "BKN", "CHA", "CHI", "CLE", "DAL", "DEN", "DET", "GSW",
    "HOU", "IND", "LAC", "LAL", "MEM", "MIA", "MIL", "MIN", "NOP", "NYK",
    "OKC", "ORL", "PHI", "PHX", "POR", "SAC", "SAS", "TOR", "UTA", "WAS",
)  # fmt: skip

GAMES_PER_TEAM = 82

# Relative game load by weekday (Monday first): NBA slates are light on Thursdays and Sundays.
_WEEKDAY_LOAD = np.array([0.95, 1.0, 1.25, 0.6, 1.15, 1.05, 0.8])


def _weekday_between(year: int, month: int, first_day: int, weekday: int) -> dt.date:
    """The first ``weekday`` (Monday=0) on or after ``first_day`` of the month."""
    day = dt.date(year, month, first_day)
    return day + dt.timedelta(days=(weekday - day.weekday()) % 7)


def season_days(season: int) -> list[dt.date]:
    """Game days of a regular season (2021 -> 2021-10-19 .. 2022-04-10)."""
    opening = _weekday_between(season, 10, 17, 1)
    closing = _weekday_between(season + 1, 4, 9, 6)
    all_star = _weekday_between(season + 1, 2, 15, 4)
    thanksgiving = _weekday_between(season, 11, 22, 3)
    off = {thanksgiving, dt.date(season, 12, 24)} | {
        all_star + dt.timedelta(days=offset) for offset in range(6)
    }
    span = (closing - opening).days + 1
    days = [opening + dt.timedelta(days=offset) for offset in range(span)]
    return [day for day in days if day not in off]


def schedule(season: int, rng: np.random.Generator) -> list[tuple[dt.date, str, str]]:
    """(date, home, away) of every game of a season; each team plays 82 games."""
    days = season_days(season)
    load = _WEEKDAY_LOAD[[day.weekday() for day in days]] * rng.uniform(0.75, 1.25, len(days))
    load[0] = 0.25  # opening night: two games
    played = np.zeros(len(TEAMS), dtype=int)
    games: list[tuple[dt.date, str, str]] = []
    for index, day in enumerate(days):
        open_teams = np.flatnonzero(played < GAMES_PER_TEAM)
        # Spread the games still to play over the remaining days in proportion to their load.
        needed = (GAMES_PER_TEAM * len(TEAMS) - played.sum()) // 2
        count = int(round(needed * load[index] / load[index:].sum()))
        count = min(max(count, 1), len(open_teams) // 2, 13)
        if count <= 0:
            continue
        # Teams furthest behind play first; random jitter breaks ties.
        priority = played[open_teams] + rng.uniform(0, 0.9, len(open_teams))
        chosen = open_teams[np.argsort(priority)[: 2 * count]]
        rng.shuffle(chosen)
        for home, away in zip(chosen[0::2], chosen[1::2]):
            games.append((day, TEAMS[home], TEAMS[away]))
        played[chosen] += 1
    return games
