"""The demo warehouse: a deterministic, realistic league in the state of the team's incident.

``build_demo`` makes 30 teams of 15 players, real-shaped season calendars (default one season,
2021-22; more seasons go back in time), box scores, then computes MLFS and predictions with the same
set-based processors a backfill uses, and finally breaks December 2021 the way it broke for the team:

- predictions missing for 2021-12-07 and 2021-12-09 (the timed-out dates);
- MLFS for 2021-12-09 below the 90% gate, so its predictions are blocked until MLFS is backfilled;
- stale rows of every category on a few December dates.

The early-season dates of October and November are bootstrap dates (expected gaps) by construction.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backfill.config import Settings
from backfill.declared import DEMO_LABELS
from backfill.demo_calendar import TEAMS, schedule
from backfill.errors import BadInput
from backfill.pipeline import builtin_pipeline
from backfill.processors.sql import SqlProcessor
from backfill.seasons import season_of
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import PLAYER_GAME_SUMMARY

INCIDENT_SEASON = 2021
MISSING_PREDICTION_DATES = (dt.date(2021, 12, 7), dt.date(2021, 12, 9))
THIN_MLFS_DATE = dt.date(2021, 12, 9)
MAX_SEASONS = 60
"""The most seasons a demo holds (the benchmark's largest point is 50; calendars are made by rule)."""
THIN_MLFS_SHARE = 0.85
"""Share of 2021-12-09's MLFS rows that survive the incident: under the 90% gate."""

UTC = dt.UTC
BUILT_AT = dt.datetime(2022, 7, 1, 3, 0, tzinfo=UTC)
"""When the demo pretends MLFS and predictions were last computed (fixed, for determinism)."""
CORRECTED_AT = dt.datetime(2022, 7, 15, 8, 0, tzinfo=UTC)
"""When some upstream rows were corrected after that: the source of outdated rows."""

_FIRST = (
    "James", "Marcus", "Tyler", "Jalen", "Devin", "Chris", "Kevin", "Anthony", "Jordan", "Brandon",
    "Derrick", "Malik", "Andre", "Cameron", "Isaiah", "Jaylen", "Kyle", "Luka", "Nikola", "Trae",
    "Zion", "Bam", "Jrue", "Darius", "Mikal", "Tobias", "Fred", "Gary", "Josh", "Keldon",
    "Scottie", "Evan", "Cade", "Franz", "Herbert", "Immanuel", "Jabari", "Lonzo", "Moses", "Obi",
)  # fmt: skip
_LAST = (
    "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Thomas",
    "Moore", "Martin", "Jackson", "Thompson", "White", "Harris", "Clark", "Lewis", "Robinson",
    "Walker", "Young", "Allen", "King", "Wright", "Hill", "Green", "Adams", "Baker", "Nelson",
    "Carter", "Mitchell", "Roberts", "Turner", "Phillips", "Campbell", "Parker", "Evans", "Edwards",
    "Collins", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Morgan", "Bell", "Bailey",
)  # fmt: skip

# Chance of playing in a team game by roster rank (1 = star, 15 = end of the bench).
_PLAY_CHANCE = np.array(
    [0.95, 0.95, 0.94, 0.94, 0.93, 0.92, 0.9, 0.88, 0.82, 0.78, 0.7, 0.62, 0.55, 0.45, 0.4]
)
_MINUTES_MEAN = np.array([35, 33, 31, 29, 27, 24, 22, 20, 17, 15, 12, 10, 8, 7, 6], dtype=float)


@dataclass(frozen=True)
class DemoSummary:
    """What ``build_demo`` made, for the CLI to print."""

    seasons: tuple[int, ...]
    games: int
    players: int
    player_game_rows: int
    first_date: dt.date
    last_date: dt.date


def _players(rng: np.random.Generator) -> pd.DataFrame:
    """450 players: unique names and lookups, a roster slot and a scoring rate."""
    pairs = [(first, last) for first in _FIRST for last in _LAST]
    chosen = rng.choice(len(pairs), size=len(TEAMS) * 15, replace=False)
    names = [f"{pairs[i][0]} {pairs[i][1]}" for i in chosen]
    return pd.DataFrame(
        {
            "player_name": names,
            "player_lookup": [name.replace(" ", "").lower() for name in names],
            "team_index": np.repeat(np.arange(len(TEAMS)), 15),
            "rank": np.tile(np.arange(15), len(TEAMS)),
            "points_per_minute": rng.normal(0.46, 0.09, len(names)).clip(0.2, 0.85),
        }
    )


def _month_days(year: int, month: int) -> set[dt.date]:
    first = dt.date(year, month, 1)
    return {
        first + dt.timedelta(days=offset)
        for offset in range(31)
        if (first + dt.timedelta(days=offset)).month == month
    }


def _box_scores(season: int, players: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """player_game_summary rows of one season."""
    games = schedule(season, rng)
    team_games = []  # (game_id, date, team, opponent, is_home)
    for day, home, away in games:
        game_id = f"{day:%Y%m%d}_{away}_{home}"
        team_games.append((game_id, day, home, away, True))
        team_games.append((game_id, day, away, home, False))
    frame = pd.DataFrame(team_games, columns=["game_id", "game_date", "team", "opponent", "is_home"])
    frame["team_index"] = frame["team"].map({team: i for i, team in enumerate(TEAMS)})
    rows = frame.merge(players, on="team_index")
    chance = _PLAY_CHANCE[rows["rank"].to_numpy()]
    # A few players miss a stretch of the season (injury) or join late; none before January,
    # so the incident month has no late debuts.
    absent = np.zeros(len(rows), dtype=bool)
    for lookup in rng.choice(players["player_lookup"], size=12, replace=False):
        start = dt.date(season, 12, 1) + dt.timedelta(days=int(rng.integers(10, 90)))
        length = dt.timedelta(days=int(rng.integers(7, 30)))
        absent |= (rows["player_lookup"] == lookup).to_numpy() & (
            (rows["game_date"] >= start) & (rows["game_date"] < start + length)
        ).to_numpy()
    # Call-ups from the G League play their team's last three games of November: bootstrap games
    # all of them (why the team's November stood just under 100% player coverage), and by December
    # they have the three games of history that predictions need.
    forced = np.zeros(len(rows), dtype=bool)
    for lookup in rng.choice(players.loc[players["rank"] >= 12, "player_lookup"], size=5, replace=False):
        own = (rows["player_lookup"] == lookup).to_numpy()
        november = sorted(set(rows.loc[own, "game_date"]) & set(_month_days(season, 11)))
        debut_games = november[-3:]
        absent |= own & (rows["game_date"] < debut_games[0]).to_numpy()
        forced |= own & rows["game_date"].isin(debut_games).to_numpy()
    plays = ((rng.random(len(rows)) < chance) & ~absent) | forced
    rows = rows[plays].copy()
    minutes = rng.normal(_MINUTES_MEAN[rows["rank"].to_numpy()], 4.0).clip(1, 46)
    rows["minutes_played"] = minutes.round(1)
    rows["points"] = rng.poisson(minutes * rows["points_per_minute"].to_numpy()).astype("int64")
    next_morning = pd.to_datetime(rows["game_date"]) + pd.Timedelta(days=1, hours=6)
    jitter = pd.to_timedelta(rng.integers(0, 3600, len(rows)), unit="s")
    rows["processed_at"] = (next_morning + jitter).dt.tz_localize("UTC")
    rows = rows.rename(columns={"team": "team_abbr", "opponent": "opponent_abbr"})
    return rows[list(PLAYER_GAME_SUMMARY.column_names)]


def build_demo(warehouse: Warehouse, settings: Settings, seasons: int = 1, seed: int = 7) -> DemoSummary:
    """(Re)build the demo warehouse from nothing; the same seed gives the same data."""
    if not 1 <= seasons <= MAX_SEASONS:
        raise BadInput(f"seasons must be between 1 and {MAX_SEASONS}, got {seasons}")
    rng = np.random.default_rng(seed)
    players = _players(rng)
    years = tuple(range(INCIDENT_SEASON - seasons + 1, INCIDENT_SEASON + 1))
    box = pd.concat([_box_scores(year, players, rng) for year in years], ignore_index=True)
    warehouse.drop_tables()
    warehouse.create_schema()
    # Marked before any row goes in: a build that dies half-way can still be replaced.
    warehouse.label_tables(DEMO_LABELS)
    warehouse.load_frame(PLAYER_GAME_SUMMARY, box)
    dates = sorted(set(box["game_date"]))
    # The demo's recipe is the built-in pipeline's SQL, whatever pipeline the console runs, a season
    # per statement as a backfill writes it: each table then holds its rows in date order, as a
    # warehouse filled day by day does (BigQuery: date partitions; DuckDB: zone maps that let a
    # batch's statements skip the other seasons), not one whole history ordered by player.
    pipeline = builtin_pipeline()
    by_season: dict[int, list[dt.date]] = {}
    for day in dates:
        by_season.setdefault(season_of(day), []).append(day)
    for stage in pipeline.backfillable:
        processor = SqlProcessor(stage, pipeline)
        for season_dates in by_season.values():
            warehouse.execute(processor.script(), processor.params(season_dates, BUILT_AT))
    _break_like_the_incident(warehouse, seed)
    create_declared_tables(warehouse, settings)
    return DemoSummary(
        seasons=years,
        games=int(box["game_id"].nunique()),
        players=int(box["player_lookup"].nunique()),
        player_game_rows=len(box),
        first_date=dates[0],
        last_date=dates[-1],
    )


# Each damage is a parameterised statement on a December date; together they leave December with
# two missing prediction dates, one MLFS date under the gate and every category of stale row.
_INCIDENT = (
    # Predictions of the two timed-out dates never landed.
    (
        "DELETE FROM {pred} WHERE game_date IN (@d1, @d2)",
        {"d1": MISSING_PREDICTION_DATES[0], "d2": MISSING_PREDICTION_DATES[1]},
    ),
    # Orphans: MERGE leftovers for a player renamed upstream (a suffix was dropped).
    (
        "INSERT INTO {mlfs} SELECT game_date, CONCAT(player_lookup, 'jr'), team_abbr, points_avg_last_5, "
        "points_avg_last_10, minutes_avg_last_5, minutes_avg_last_10, points_avg_season, rest_days, "
        "history_games, feature_version, source_processed_at, processed_at FROM {mlfs} "
        "WHERE game_date = @d ORDER BY player_lookup LIMIT 3",
        {"d": dt.date(2021, 12, 3)},
    ),
    (
        "INSERT INTO {pred} SELECT game_date, CONCAT(player_lookup, 'jr'), system_id, predicted_points, "
        "model_version, feature_processed_at, created_at FROM {pred} "
        "WHERE game_date = @d ORDER BY player_lookup, system_id LIMIT 4",
        {"d": dt.date(2021, 12, 14)},
    ),
    # Duplicates: a re-run that appended instead of replacing.
    (
        "INSERT INTO {pred} SELECT * FROM {pred} WHERE game_date = @d ORDER BY player_lookup, system_id LIMIT 5",
        {"d": dt.date(2021, 12, 10)},
    ),
    (
        "INSERT INTO {mlfs} SELECT * FROM {mlfs} WHERE game_date = @d ORDER BY player_lookup LIMIT 2",
        {"d": dt.date(2021, 12, 10)},
    ),
    # Outdated MLFS: box scores corrected upstream after the features were computed.
    (
        "UPDATE {pgs} SET processed_at = @at, points = points + 2 WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {pgs} WHERE game_date = @d ORDER BY player_lookup LIMIT 4)",
        {"d": dt.date(2021, 12, 15), "at": CORRECTED_AT},
    ),
    # Outdated predictions: features recomputed after the predictions were made.
    (
        "UPDATE {mlfs} SET processed_at = @at WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {mlfs} WHERE game_date = @d ORDER BY player_lookup LIMIT 4)",
        {"d": dt.date(2021, 12, 17), "at": CORRECTED_AT},
    ),
    # Old versions: rows from the previous feature and model versions.
    (
        "UPDATE {pred} SET model_version = 'form_v1' WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {pred} WHERE game_date = @d ORDER BY player_lookup LIMIT 3)",
        {"d": dt.date(2021, 12, 20)},
    ),
    (
        "UPDATE {mlfs} SET feature_version = 'features_v2' WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {mlfs} WHERE game_date = @d ORDER BY player_lookup LIMIT 3)",
        {"d": dt.date(2021, 12, 20)},
    ),
    # Null fields: a prediction written without its value.
    (
        "UPDATE {pred} SET predicted_points = NULL WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {pred} WHERE game_date = @d ORDER BY player_lookup LIMIT 1)",
        {"d": dt.date(2021, 12, 21)},
    ),
)


def _break_like_the_incident(warehouse: Warehouse, seed: int) -> None:
    for template, params in _INCIDENT:
        warehouse.execute(template, params)
    # 2021-12-09's MLFS run died part-way: only some players' rows exist. The survivors are drawn
    # in Python from the seed, so every warehouse ends up with the same rows.
    rows = warehouse.query(
        "SELECT player_lookup FROM {mlfs} WHERE game_date = @d ORDER BY player_lookup",
        {"d": THIN_MLFS_DATE},
    )
    lookups = rows["player_lookup"].tolist()
    keep = np.random.default_rng(seed).permutation(lookups)[: int(len(lookups) * THIN_MLFS_SHARE)]
    warehouse.execute(
        "DELETE FROM {mlfs} WHERE game_date = @d AND player_lookup NOT IN (SELECT p FROM UNNEST(@keep) AS p)",
        {"d": THIN_MLFS_DATE, "keep": sorted(keep.tolist())},
    )


def create_declared_tables(warehouse: Warehouse, settings: Settings) -> list[str]:
    """Create the tables of the pipeline's stages that declare ``columns`` and do not exist yet (a
    team's extra stages, empty until their first backfill); returns their names."""
    made = []
    for stage in settings.pipeline.stages:
        if stage.columns:
            warehouse.create_table(stage)
            made.append(stage.table_name)
    return made


def build_demo_file(path: str | Path, settings: Settings, seasons: int = 1, seed: int = 7) -> DemoSummary:
    """Build the demo into a DuckDB file: written beside it first, then moved into place whole."""
    from backfill.warehouse.duckdb import DuckDBWarehouse

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # A private name per process: two builders at once never delete each other's half-built file.
    building = target.with_name(f".{target.name}.building-{os.getpid()}")
    building.unlink(missing_ok=True)
    warehouse = DuckDBWarehouse(settings.replace(pipeline=builtin_pipeline()), building)
    try:
        summary = build_demo(warehouse, settings, seasons=seasons, seed=seed)
    except BaseException:
        building.unlink(missing_ok=True)
        raise
    finally:
        warehouse.close()
    os.replace(building, target)
    Path(f"{target}.wal").unlink(missing_ok=True)
    return summary


def build_demo_in_place(
    warehouse: Warehouse, settings: Settings, seasons: int = 1, seed: int = 7, *, replace: bool = False
) -> DemoSummary:
    """Build the demo in a warehouse's own datasets (BigQuery), never over tables it did not make.

    Tables of the demo's names that the demo did not label as its own are never dropped: the
    datasets may be production ones, so the build is refused, ``replace`` or not. Tables the demo
    made are dropped and rebuilt only when ``replace`` says so. Either refusal writes nothing.
    """
    found = warehouse.existing_tables()
    foreign = sorted(name for name, labels in found.items() if not DEMO_LABELS.items() <= labels.items())
    if foreign:
        raise BadInput(
            f"{warehouse.describe()} already has {', '.join(foreign)} not made by the demo; the demo "
            "never drops them (point BACKFILL_*_DATASET at other datasets to build it beside them)"
        )
    if found and not replace:
        raise BadInput(
            f"{warehouse.describe()} already holds the demo ({', '.join(sorted(found))}); "
            "give --replace to drop and rebuild it"
        )
    return build_demo(warehouse, settings, seasons=seasons, seed=seed)


def ensure_demo(settings: Settings) -> DemoSummary | None:
    """Build the demo warehouse when the configured warehouse is a DuckDB file that does not exist.

    Returns what it built, or None when there was nothing to do (the file exists, or the warehouse
    is not a local file: a production warehouse is never filled with demo data).
    """
    from backfill.warehouse import adapter_class, parse_url

    kind, location = parse_url(settings.warehouse)
    file = adapter_class(kind).local_file(location)
    if file is None or Path(file).exists():
        return None
    return build_demo_file(file, settings)
