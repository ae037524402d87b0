"""The two ways the team worked before the product, run on the same data for comparison.

- :func:`monthly_by_hand`: coverage checked one month at a time with the team's own SQL (SPEC 3),
  plus a per-date count query for the month, for each stage: two queries per month per stage.
- :func:`per_date_loop`: a backfill as the team's per-date scripts did it: for each date and stage,
  a DELETE of the date, then an INSERT of the date computed by the product's own processor SQL.

Both favour the baseline where a choice had to be made: the monthly queries share one open
database, and the per-date loop neither measures coverage nor checks the MLFS gate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pandas as pd

from backfill import coverage
from backfill.config import Settings
from backfill.pipeline import builtin_pipeline
from backfill.processors.sql import SqlProcessor
from backfill.seasons import season_start
from backfill.warehouse import Warehouse

PIPELINE = builtin_pipeline()
"""The team's by-hand method knows the demo's two stages, as the team's own SQL did."""
STAGES = PIPELINE.stage_names

STAGE_ALIASES = {"mlfs": "mlfs", "predictions": "pred"}

MONTHS_SQL = "SELECT DISTINCT FORMAT_DATE('%Y-%m', game_date) AS period FROM {pgs} ORDER BY period"

# SPEC 3, word for word: the team's player coverage of one month.
TEAM_SQL = """SELECT COUNT(DISTINCT s.player_lookup) AS players_covered,
  COUNT(DISTINCT pgs.player_lookup) AS players_total
FROM {{pgs}} AS pgs
LEFT JOIN {{{stage}}} AS s ON s.game_date = pgs.game_date AND s.player_lookup = pgs.player_lookup
WHERE pgs.game_date BETWEEN @start AND @end"""

# Per date of one month, for one stage: players, bootstrap players (history counted from the
# season's start), players with a row, expected players with a row, and the table's rows.
DATE_COUNTS_SQL = """WITH played AS (
  SELECT game_date, player_lookup,
    ROW_NUMBER() OVER (PARTITION BY player_lookup ORDER BY game_date) - 1 AS history_games
  FROM (SELECT DISTINCT game_date, player_lookup FROM {{pgs}} WHERE game_date BETWEEN @season_start AND @end)
),
covered AS (
  SELECT DISTINCT game_date, player_lookup FROM {{{stage}}} WHERE game_date BETWEEN @start AND @end
),
table_rows AS (
  SELECT game_date, COUNT(*) AS n FROM {{{stage}}} WHERE game_date BETWEEN @start AND @end GROUP BY game_date
)
SELECT p.game_date, COUNT(*) AS players_total,
  COUNTIF(p.history_games < @min_history_games) AS bootstrap_players,
  COUNTIF(c.player_lookup IS NOT NULL) AS covered,
  COUNTIF(c.player_lookup IS NOT NULL AND p.history_games >= @min_history_games) AS expected_covered,
  ANY_VALUE(COALESCE(t.n, 0)) AS table_rows
FROM played AS p
LEFT JOIN covered AS c ON c.game_date = p.game_date AND c.player_lookup = p.player_lookup
LEFT JOIN table_rows AS t ON t.game_date = p.game_date
WHERE p.game_date BETWEEN @start AND @end
GROUP BY p.game_date"""


@dataclass(frozen=True)
class MonthlyByHand:
    """What the month-by-month check found, and how many queries it took."""

    months: pd.DataFrame  # period, stage, players_covered, players_total
    daily_counts: pd.DataFrame  # in the shape of coverage.daily_counts
    statements: int


def _month_bounds(period: str) -> tuple[dt.date, dt.date]:
    first = dt.date.fromisoformat(f"{period}-01")
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - dt.timedelta(days=1)


def monthly_by_hand(warehouse: Warehouse, settings: Settings) -> MonthlyByHand:
    """Every month with games, each stage: the team's SQL and the per-date counts (2 queries each)."""
    issued = warehouse.statements_issued
    month_rows, date_frames = [], []
    with warehouse.session():
        for period in warehouse.query(MONTHS_SQL)["period"]:
            start, end = _month_bounds(period)
            per_stage = {}
            for stage in STAGES:
                alias = STAGE_ALIASES[stage]
                team = warehouse.query(TEAM_SQL.format(stage=alias), {"start": start, "end": end}).iloc[0]
                month_rows.append(
                    {
                        "period": period,
                        "stage": stage,
                        "players_covered": int(team["players_covered"]),
                        "players_total": int(team["players_total"]),
                    }
                )
                per_stage[stage] = warehouse.query(
                    DATE_COUNTS_SQL.format(stage=alias),
                    {
                        "start": start,
                        "end": end,
                        "season_start": season_start(start),
                        "min_history_games": PIPELINE.stage(stage).bootstrap_min_history,
                    },
                ).set_index("game_date")
            date_frames.append(_as_daily_counts(per_stage))
    return MonthlyByHand(
        months=pd.DataFrame(month_rows),
        daily_counts=pd.concat(date_frames).sort_values("game_date").reset_index(drop=True),
        statements=warehouse.statements_issued - issued,
    )


def _as_daily_counts(per_stage: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The two stages' per-date counts of a month in the columns of ``coverage.daily_counts``."""
    mlfs, predictions = per_stage["mlfs"], per_stage["predictions"]
    return pd.DataFrame(
        {
            "game_date": mlfs.index,
            "players_total": mlfs["players_total"].to_numpy(),
            "mlfs_bootstrap": mlfs["bootstrap_players"].to_numpy(),
            "predictions_bootstrap": predictions["bootstrap_players"].reindex(mlfs.index).to_numpy(),
            "mlfs_covered": mlfs["covered"].to_numpy(),
            "mlfs_expected_covered": mlfs["expected_covered"].to_numpy(),
            "predictions_covered": predictions["covered"].reindex(mlfs.index).to_numpy(),
            "predictions_expected_covered": predictions["expected_covered"].reindex(mlfs.index).to_numpy(),
            "mlfs_rows": mlfs["table_rows"].to_numpy(),
            "predictions_rows": predictions["table_rows"].reindex(mlfs.index).to_numpy(),
        }
    )


def same_numbers(
    by_hand: MonthlyByHand, monthly: pd.DataFrame, daily: pd.DataFrame, settings: Settings
) -> dict[str, bool]:
    """Whether the baseline agrees with the product, on the team's monthly player coverage and on
    every date's status."""
    product = monthly.loc[
        monthly["players_total"] > 0, ["period", "stage", "players_covered", "players_total"]
    ]
    merged = by_hand.months.merge(product, on=["period", "stage"], how="outer", suffixes=("", "_product"))
    months_agree = bool(
        len(merged) == len(by_hand.months)
        and (merged["players_covered"] == merged["players_covered_product"]).all()
        and (merged["players_total"] == merged["players_total_product"]).all()
    )
    start, end = daily["game_date"].min(), daily["game_date"].max()
    derived = coverage.daily_from_counts(by_hand.daily_counts, settings, start, end)
    keys = ["game_date", "stage"]
    left = derived.set_index(keys)["status"].sort_index()
    right = daily.set_index(keys)["status"].sort_index()
    statuses_agree = bool(left.index.equals(right.index) and (left == right).all())
    return {"player_coverage_per_month": months_agree, "date_statuses": statuses_agree}


def _processor(stage: str) -> SqlProcessor:
    return SqlProcessor(PIPELINE.stage(stage), PIPELINE)


def per_date_statements(stage: str) -> tuple[str, str]:
    """The DELETE and the INSERT of the product's replace script for a stage, as two statements."""
    parts = [part.strip() for part in _processor(stage).script().split(";\n")]
    parts = [part.rstrip(";").strip() for part in parts if part]
    body = [part for part in parts if not part.upper().startswith(("BEGIN", "COMMIT"))]
    kinds = [part.split(None, 1)[0].upper() for part in body]
    if kinds != ["DELETE", "INSERT"]:
        raise RuntimeError(f"the replace script of {stage} is no longer DELETE then INSERT ({kinds})")
    return body[0], body[1]


def per_date_loop(warehouse: Warehouse, settings: Settings, dates: list[dt.date], now: dt.datetime) -> int:
    """For each date, for each stage: DELETE the date, then INSERT it; returns statements issued."""
    issued = warehouse.statements_issued
    statements = {stage: per_date_statements(stage) for stage in STAGES}
    for day in dates:
        for stage in STAGES:
            delete, insert = statements[stage]
            params = _processor(stage).params([day], now)
            warehouse.execute(delete, params)
            warehouse.execute(insert, params)
    return warehouse.statements_issued - issued
