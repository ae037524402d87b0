"""Dry run: what a backfill would do, measured now, without writing anything.

One row per (date, stage): the coverage now, the gate's verdict, the action the runner would take
(replace, skip because there are no games, blocked by the gate) and the stale rows that the
replacement would remove. Three statements for the whole request, whatever its size.
"""

from __future__ import annotations

import pandas as pd

from backfill import coverage, stale
from backfill.config import Settings
from backfill.gates import mlfs_gate
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse
from backfill.warehouse.schema import STAGE_TABLES

PLAN_COLUMNS = [
    "game_date",
    "stage",
    "action",
    "status_now",
    "players_total",
    "players_covered",
    "coverage_now_pct",
    "mlfs_coverage_pct",
    "gate",
    "stale_rows_to_go",
]


def dry_run(warehouse: Warehouse, settings: Settings, request: BackfillRequest) -> pd.DataFrame:
    """The plan of a request: one row per work item, in the order the runner would do them."""
    start, end = min(request.dates), max(request.dates)
    daily = coverage.daily_coverage(warehouse, settings, start, end)
    daily = daily[daily["game_date"].isin(request.dates) & daily["stage"].isin(request.stages)]
    counts = stale.stale_counts(warehouse, settings, start, end)
    stale_by_key = counts.groupby(["game_date", "table_name"])["rows"].sum().to_dict() if len(counts) else {}
    mlfs_rebuilt = "mlfs" in request.stages
    rows = []
    for row in daily.itertuples():
        gate_text = ""
        action = "replace"
        if row.players_total == 0:
            action = "skip: no games"
        elif row.stage == "predictions":
            measured = 100.0 * row.upstream_covered / row.players_total
            gate = mlfs_gate(measured, request.min_mlfs_coverage_pct, request.skip_mlfs_check)
            if mlfs_rebuilt and not request.skip_mlfs_check:
                gate_text = f"judged after this run rebuilds MLFS (MLFS now {measured:.1f}%)"
            else:
                gate_text = gate.reason
                if not gate.passed:
                    action = "blocked by the MLFS gate"
        table = STAGE_TABLES[row.stage].name
        rows.append(
            {
                "game_date": row.game_date,
                "stage": row.stage,
                "action": action,
                "status_now": row.status,
                "players_total": row.players_total,
                "players_covered": row.players_covered,
                "coverage_now_pct": row.expected_coverage_pct
                if row.expected_coverage_pct is not None
                else row.player_game_coverage_pct,
                "mlfs_coverage_pct": row.upstream_coverage_pct,
                "gate": gate_text,
                "stale_rows_to_go": int(stale_by_key.get((row.game_date, table), 0))
                if action == "replace"
                else 0,
            }
        )
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    return plan.sort_values(["game_date", "stage"], key=_stage_key).reset_index(drop=True)


def _stage_key(column: pd.Series) -> pd.Series:
    return column.map({"mlfs": 0, "predictions": 1}) if column.name == "stage" else column
