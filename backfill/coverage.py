"""Coverage: how much of player_game_summary each stage covers, per date and per month.

Definitions (SPEC 3):

- player-game coverage: share of (date, player) rows of player_game_summary with a row in the stage;
- player coverage of a period: distinct covered players / distinct players (the team's own figure);
- expected coverage: player-game coverage with bootstrap players left out of the denominator;
- date status: ``ok``, ``partial``, ``missing``, ``blocked``, ``bootstrap`` or ``no_games``.

A bootstrap player of a stage has fewer than its ``bootstrap_min_history`` earlier games in the
season. Every stage of the pipeline is measured by the same two set-based queries (per date, and per
month for distinct players), never one query per date or stage; statuses are then derived from the
counts. The SQL is built from the pipeline's stages, so a new stage needs no code.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd

from backfill.config import Settings
from backfill.gates import below_gate
from backfill.pipeline import Pipeline, Stage
from backfill.seasons import SEASON_SQL, season_start
from backfill.validate import date_span
from backfill.warehouse import Warehouse

STATUSES = ("missing", "blocked", "partial", "bootstrap", "ok", "no_games")
"""Date statuses, most severe first; a month takes the most severe status of its dates."""

GAP_STATUSES = ("missing", "blocked", "partial")
"""Statuses that are real gaps (bootstrap dates are expected, no_games dates have nothing to do)."""


# The reference's (date, player) pairs of the range, with the player's earlier games in the season.
def _played(pipeline: Pipeline, name_columns: bool = False) -> str:
    ref = pipeline.reference
    extra = ""
    if name_columns:
        name = ref.name_column or ref.player_column
        team = ref.team_column or "CAST(NULL AS STRING)"
        extra = f", MAX({name}) AS player_name, MAX({team}) AS team_abbr"
    return f"""played AS (
  SELECT *,
    ROW_NUMBER() OVER (PARTITION BY player_lookup, season ORDER BY game_date) - 1 AS history_games
  FROM (
    SELECT {ref.date_column} AS game_date, {ref.player_column} AS player_lookup,
      {SEASON_SQL.replace("game_date", ref.date_column)} AS season{extra}
    FROM {{{ref.name}}}
    WHERE {ref.date_column} BETWEEN @history_start AND @end
    GROUP BY {ref.date_column}, {ref.player_column}
  ) AS games
)"""


def _has_row(stage: Stage, day: str = "@start AND @end") -> str:
    """Whether a (date, player) of the reference has a row in a stage. The date range inside the
    semi-join lets the warehouse skip the stage's other dates (DuckDB zone maps, BigQuery partitions)."""
    d, p = stage.date_column, stage.player_column
    return (
        f"EXISTS (SELECT 1 FROM {{{stage.name}}} AS s WHERE s.{d} BETWEEN {day} "
        f"AND s.{d} = p.game_date AND s.{p} = p.player_lookup)"
    )


def _expected(stage: Stage) -> str:
    """The bootstrap rule, written once: a player is expected in a stage on a date (not a bootstrap
    player) with at least the stage's ``bootstrap_min_history`` earlier games this season."""
    return f"p.history_games >= @min_history_{stage.name}"


@lru_cache(maxsize=16)
def daily_sql(pipeline: Pipeline) -> str:
    """Per date: players, and per stage its bootstrap players, who has a row (semi-joins: a stage's
    duplicate rows never inflate a count) and its row count (rows written by a backfill)."""
    stages = pipeline.backfillable
    flags = ",\n    ".join(
        f"{_expected(s)} AS expected_{s.name}, {_has_row(s)} AS has_{s.name}" for s in stages
    )
    counts = ",\n    ".join(
        f"COUNTIF(NOT expected_{s.name}) AS {s.name}_bootstrap, COUNTIF(has_{s.name}) AS {s.name}_covered, "
        f"COUNTIF(has_{s.name} AND expected_{s.name}) AS {s.name}_expected_covered"
        for s in stages
    )
    rows = ",\n".join(
        f"{s.name}_rows AS (SELECT {s.date_column} AS game_date, COUNT(*) AS n FROM {{{s.name}}} "
        f"WHERE {s.date_column} BETWEEN @start AND @end GROUP BY {s.date_column})"
        for s in stages
    )
    picks = ", ".join(f"COALESCE(r_{s.name}.n, 0) AS {s.name}_rows" for s in stages)
    joins = "\n".join(
        f"LEFT JOIN {s.name}_rows AS r_{s.name} ON r_{s.name}.game_date = d.game_date" for s in stages
    )
    return f"""WITH {_played(pipeline)},
flags AS (
  SELECT p.game_date,
    {flags}
  FROM played AS p
  WHERE p.game_date BETWEEN @start AND @end
),
per_date AS (
  SELECT game_date, COUNT(*) AS players_total,
    {counts}
  FROM flags
  GROUP BY game_date
),
{rows}
SELECT d.*, {picks}
FROM per_date AS d
{joins}"""


@lru_cache(maxsize=16)
def monthly_players_sql(pipeline: Pipeline) -> str:
    """The team's own player coverage: COUNT(DISTINCT covered) / COUNT(DISTINCT played) per month;
    the same answer as its LEFT JOIN query, by semi-joins that never multiply rows."""
    ref = pipeline.reference
    flags = ",\n    ".join(f"{_has_row(s)} AS has_{s.name}" for s in pipeline.backfillable)
    covered = ",\n  ".join(
        f"COUNT(DISTINCT IF(has_{s.name}, player_lookup, NULL)) AS {s.name}_players_covered"
        for s in pipeline.backfillable
    )
    return f"""WITH flags AS (
  SELECT p.game_date, p.player_lookup,
    {flags}
  FROM (SELECT DISTINCT {ref.date_column} AS game_date, {ref.player_column} AS player_lookup FROM {{{ref.name}}}
    WHERE {ref.date_column} BETWEEN @start AND @end) AS p
)
SELECT FORMAT_DATE('%Y-%m', game_date) AS period,
  COUNT(DISTINCT player_lookup) AS players_total,
  {covered}
FROM flags
GROUP BY period"""


@lru_cache(maxsize=16)
def date_players_sql(pipeline: Pipeline) -> str:
    """Every player of one date (``@end``) with their rows in each stage."""
    stages = pipeline.backfillable
    picks = ",\n  ".join(
        f"COALESCE(r_{s.name}.n, 0) > 0 AS has_{s.name}, COALESCE(r_{s.name}.n, 0) AS rows_{s.name}, "
        f"{_expected(s)} AS expected_{s.name}"
        for s in stages
    )
    joins = "\n".join(
        f"LEFT JOIN (SELECT {s.player_column} AS player_lookup, COUNT(*) AS n FROM {{{s.name}}}\n"
        f"  WHERE {s.date_column} = @end GROUP BY {s.player_column}) AS r_{s.name}\n"
        f"  ON r_{s.name}.player_lookup = p.player_lookup"
        for s in stages
    )
    return f"""WITH {_played(pipeline, name_columns=True)}
SELECT p.player_lookup, p.player_name, p.team_abbr, p.history_games,
  {picks}
FROM played AS p
{joins}
WHERE p.game_date = @end
ORDER BY p.team_abbr, p.player_lookup"""


def bounds_sql(pipeline: Pipeline) -> str:
    ref = pipeline.reference
    return f"SELECT MIN({ref.date_column}) AS first_date, MAX({ref.date_column}) AS last_date FROM {{{ref.name}}}"


def pct(covered: int, total: int) -> float | None:
    """Percentage with one decimal, rounded half up; never 100.0 short of complete, nor 0.0 above 0."""
    if not total:
        return None
    value = (2000 * covered + total) // (2 * total) / 10
    if covered < total and value >= 100.0:
        return 99.9
    if covered > 0 and value <= 0.0:
        return 0.1
    return value


def _ratio_pct(covered: pd.Series, total: pd.Series) -> pd.Series:
    """Unrounded percentages (NaN where the total is zero), for comparisons with thresholds."""
    return 100.0 * covered / total.where(total > 0)


def pct_column(covered: pd.Series, total: pd.Series) -> list[float | None]:
    """:func:`pct` of every row, computed with whole-column integer arithmetic."""
    c = np.asarray(covered, dtype="int64")
    t = np.asarray(total, dtype="int64")
    safe = np.where(t > 0, t, 1)
    value = ((2000 * c + safe) // (2 * safe)) / 10
    value = np.where((c < t) & (value >= 100.0), 99.9, value)
    value = np.where((c > 0) & (value <= 0.0), 0.1, value)
    return [float(v) if ok else None for v, ok in zip(value, t > 0)]


def reference_rows_sql(pipeline: Pipeline) -> str:
    ref = pipeline.reference
    return (
        f"SELECT {ref.date_column} AS game_date, COUNT(*) AS reference_rows FROM {{{ref.name}}}\n"
        f"WHERE {ref.date_column} BETWEEN @start AND @end GROUP BY {ref.date_column}"
    )


def reference_rows(warehouse: Warehouse, start: dt.date, end: dt.date) -> dict[dt.date, int]:
    """Rows of the reference table on each date of the range that has any (one statement)."""
    found = warehouse.query(reference_rows_sql(warehouse.settings.pipeline), {"start": start, "end": end})
    return dict(zip(found["game_date"].tolist(), (int(n) for n in found["reference_rows"].tolist())))


def data_bounds(warehouse: Warehouse) -> tuple[dt.date, dt.date] | None:
    """First and last date of the reference table, or None when it is empty: from its partitions'
    metadata where the warehouse has it (BigQuery; a table that requires a partition filter refuses
    a MIN/MAX over all of it), else from its date column."""
    known = warehouse.partition_bounds(warehouse.settings.pipeline.reference)
    if known is not None:
        return None if known.first is None or known.last is None else (known.first, known.last)
    row = warehouse.query(bounds_sql(warehouse.settings.pipeline)).iloc[0]
    if pd.isna(row["first_date"]):
        return None
    return row["first_date"], row["last_date"]


def has_games(frame: pd.DataFrame) -> bool:
    """Whether coverage rows (daily, monthly or a plan) count any player-game."""
    return bool(len(frame)) and bool((frame["players_total"] > 0).any())


def no_data_note(
    games: bool, start: dt.date, end: dt.date, bounds: Callable[[], tuple[dt.date, dt.date] | None]
) -> str | None:
    """The one line a read answers over a range without a single game (SPEC 9.4), or None when the
    range has ``games``; ``bounds`` (the data's first and last date) is asked only then."""
    if games:
        return None
    held = bounds()
    where = f"the warehouse holds {held[0]} to {held[1]}" if held else "the warehouse holds no games at all"
    return f"no data from {start} to {end}; {where}"


def _range_params(settings: Settings, start: dt.date, end: dt.date) -> dict:
    return {
        "start": start,
        "end": end,
        "history_start": season_start(start),
    } | {f"min_history_{s.name}": s.bootstrap_min_history for s in settings.pipeline.backfillable}


def daily_counts(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """The counts behind daily coverage, one row per game date of the range (one statement)."""
    return warehouse.query(daily_sql(settings.pipeline), _range_params(settings, start, end))


def daily_coverage(warehouse: Warehouse, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per date of the range and stage, off days included (status ``no_games``)."""
    return daily_from_counts(daily_counts(warehouse, settings, start, end), settings, start, end)


def count_columns(pipeline: Pipeline) -> list[str]:
    """The columns of :func:`daily_sql`'s rows besides ``game_date``."""
    per_stage = ("bootstrap", "covered", "expected_covered", "rows")
    return ["players_total", *(f"{s.name}_{what}" for s in pipeline.backfillable for what in per_stage)]


def daily_from_counts(counts: pd.DataFrame, settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Coverage, status, season and month of every (date, stage) from :func:`daily_counts` rows."""
    pipeline = settings.pipeline
    calendar = date_span(start, end)
    # Every date of the range, off days counted as zeros (a runner's window measures this often); a
    # range without a single game has no count columns at all until they are named here.
    counts = (
        counts.set_index("game_date")
        .reindex(index=calendar, columns=count_columns(pipeline), fill_value=0)
        .fillna(0)
        .astype("int64")
        .rename_axis("game_date")
        .reset_index()
    )
    stamps = pd.to_datetime(counts["game_date"])
    season = (stamps.dt.year - (stamps.dt.month < 8)).astype("int64")
    period = stamps.dt.strftime("%Y-%m")
    frames = []
    for stage in pipeline.backfillable:
        upstream = pipeline.upstream(stage)
        has_upstream = upstream is not pipeline.reference
        frame = pd.DataFrame(
            {
                "game_date": counts["game_date"],
                "stage": stage.name,
                "players_total": counts["players_total"],
                "players_covered": counts[f"{stage.name}_covered"],
                "bootstrap_players": counts[f"{stage.name}_bootstrap"],
                "expected_total": counts["players_total"] - counts[f"{stage.name}_bootstrap"],
                "expected_covered": counts[f"{stage.name}_expected_covered"],
                "table_rows": counts[f"{stage.name}_rows"],
                # The upstream stage's coverage beside this one: the gate's input.
                "upstream_covered": counts[f"{upstream.name}_covered"] if has_upstream else np.nan,
                "gate_pct": np.nan if stage.gate_min_upstream_pct is None else stage.gate_min_upstream_pct,
                "season": season,
                "period": period,
            }
        )
        frame["player_game_coverage_pct"] = pct_column(frame["players_covered"], frame["players_total"])
        frame["expected_coverage_pct"] = pct_column(frame["expected_covered"], frame["expected_total"])
        frame["upstream_coverage_pct"] = (
            pct_column(frame["upstream_covered"], frame["players_total"]) if has_upstream else None
        )
        frames.append(frame)
    daily = pd.concat(frames, ignore_index=True)
    daily["status"] = date_status(daily, settings)
    return daily


def upstream_ratio_pct(daily: pd.DataFrame) -> pd.Series:
    """Unrounded upstream coverage beside each row (the gate compares this, not the display)."""
    return _ratio_pct(daily["upstream_covered"], daily["players_total"])


def date_status(daily: pd.DataFrame, settings: Settings) -> pd.Series:
    """Status of each (date, stage) row from its counts (SPEC 3)."""
    pg_pct = _ratio_pct(daily["players_covered"], daily["players_total"])
    expected_pct = _ratio_pct(daily["expected_covered"], daily["expected_total"])
    expected_ok = (daily["expected_total"] == 0) | (expected_pct >= settings.ok_pct)
    gated = below_gate(upstream_ratio_pct(daily), daily["gate_pct"])
    conditions = [
        daily["players_total"] == 0,
        expected_ok & (pg_pct >= settings.ok_pct),
        expected_ok,
        gated,
        daily["players_covered"] == 0,
    ]
    choices = ["no_games", "ok", "bootstrap", "blocked", "missing"]
    return pd.Series(np.select(conditions, choices, default="partial"), index=daily.index)


def monthly_player_counts(warehouse: Warehouse, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Distinct players per month, and those with a row in each stage (one statement)."""
    return warehouse.query(monthly_players_sql(warehouse.settings.pipeline), {"start": start, "end": end})


def monthly_coverage(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    daily: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per month and stage: the team's player coverage beside player-game figures."""
    if daily is None:
        daily = daily_coverage(warehouse, settings, start, end)
    return monthly_from(daily, monthly_player_counts(warehouse, start, end))


def monthly_from(daily: pd.DataFrame, players: pd.DataFrame) -> pd.DataFrame:
    """Monthly figures from daily coverage and :func:`monthly_player_counts` rows."""
    keys = ["period", "stage"]
    daily = daily.assign(
        game_day=daily["players_total"] > 0,
        severity=daily["status"].map(STATUSES.index),
        is_bootstrap=daily["status"] == "bootstrap",
    )
    monthly = (
        daily.groupby(keys, sort=False)
        .agg(
            season=("season", "first"),
            player_games_total=("players_total", "sum"),
            player_games_covered=("players_covered", "sum"),
            expected_total=("expected_total", "sum"),
            expected_covered=("expected_covered", "sum"),
            game_dates=("game_day", "sum"),
            severity=("severity", "min"),
            bootstrap_dates=("is_bootstrap", "sum"),
        )
        .reset_index()
    )
    monthly["status"] = [STATUSES[rank] for rank in monthly["severity"]]
    gaps = daily[daily["status"].isin(GAP_STATUSES)]
    listed = {
        key: [f"{day:%b %d} {status}" for day, status in zip(rows["game_date"], rows["status"])]
        for key, rows in gaps.groupby(keys, sort=False)
    }
    monthly["note"] = [
        _month_note(listed.get((period, stage), []), int(bootstrap), status)
        for period, stage, bootstrap, status in zip(
            monthly["period"], monthly["stage"], monthly["bootstrap_dates"], monthly["status"]
        )
    ]
    by_period = players.set_index("period")
    totals = by_period["players_total"].reindex(monthly["period"]).fillna(0).astype("int64").to_numpy()
    # Each row's stage column of its period's counts (0 where the month has no counts).
    aligned = by_period.reindex(monthly["period"].to_numpy())
    stages = monthly["stage"].to_numpy()
    covered = np.zeros(len(monthly), dtype="int64")
    for stage in pd.unique(stages):
        rows = stages == stage
        covered[rows] = aligned[f"{stage}_players_covered"].fillna(0).to_numpy(dtype="int64")[rows]
    monthly["players_total"] = totals
    monthly["players_covered"] = covered
    monthly["player_coverage_pct"] = pct_column(monthly["players_covered"], monthly["players_total"])
    monthly["player_game_coverage_pct"] = pct_column(
        monthly["player_games_covered"], monthly["player_games_total"]
    )
    monthly["expected_coverage_pct"] = pct_column(monthly["expected_covered"], monthly["expected_total"])
    return monthly.drop(columns=["severity", "bootstrap_dates"])


def _month_note(gaps: list[str], bootstrap: int, status: str) -> str:
    """One line naming a month's gap dates, or why it has none."""
    if gaps:
        return f"{len(gaps)} gap date{'s' if len(gaps) > 1 else ''}: {', '.join(gaps)}"
    if bootstrap:
        return f"{bootstrap} early-season bootstrap date{'s' if bootstrap > 1 else ''} (expected)"
    return "no games" if status == "no_games" else "complete"


def date_players(warehouse: Warehouse, settings: Settings, day: dt.date) -> pd.DataFrame:
    """Every player of a date with their rows in each stage and, where one is missing, why."""
    pipeline = settings.pipeline
    players = warehouse.query(date_players_sql(pipeline), _range_params(settings, day, day))
    if players.empty:
        return players.assign(reason=[])
    reasons = pd.Series("", index=players.index)
    for stage in pipeline.backfillable:
        upstream = pipeline.upstream(stage)
        missing = ~players[f"has_{stage.name}"] & (reasons == "")
        bootstrap = ~players[f"expected_{stage.name}"].astype(bool)
        reasons[missing & bootstrap] = (
            "bootstrap: " + players["history_games"].astype(str) + " earlier games this season"
        )
        missing &= ~bootstrap
        if upstream is not pipeline.reference:
            upstream_pct = 100.0 * players[f"has_{upstream.name}"].mean()
            if stage.gated and below_gate(upstream_pct, stage.gate_min_upstream_pct):
                reasons[missing] = (
                    f"blocked upstream: {upstream.label} covers {upstream_pct:.1f}% of the date "
                    f"(gate {stage.gate_min_upstream_pct:g}%)"
                )
            else:
                reasons[missing] = f"{upstream.label} row but no {stage.label} row"
        else:
            reasons[missing] = f"no {stage.label} row"
    players["reason"] = reasons
    return players


def missing_players(warehouse: Warehouse, settings: Settings, day: dt.date) -> pd.DataFrame:
    """Players of a date lacking an MLFS row or a prediction, with the reason."""
    players = date_players(warehouse, settings, day)
    return players[players["reason"] != ""].reset_index(drop=True)
