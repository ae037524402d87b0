"""Dry run: what a backfill would do, measured now, without writing anything.

One row per (date, stage): the coverage now, the gate's verdict, the action the runner would take
(replace, skip because there are no games, blocked by the gate, held by another live run) and the
stale rows that the replacement would remove; beside it, the warnings of the stages' processors (for
example a column of the target table that a built-in replace would leave NULL). Two statements for the whole
request's measurements, whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from backfill import coverage, stale
from backfill.config import Settings
from backfill.gates import judge
from backfill.processors import processor_for
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse

if TYPE_CHECKING:
    from backfill.holds import Hold

PLAN_COLUMNS = [
    "game_date",
    "stage",
    "action",
    "status_now",
    "players_total",
    "players_covered",
    "coverage_now_pct",
    "upstream_coverage_pct",
    "gate",
    "stale_rows_to_go",
]


def dry_run(
    warehouse: Warehouse, settings: Settings, request: BackfillRequest, holds: Iterable[Hold] = ()
) -> pd.DataFrame:
    """The plan of a request: one row per work item, in the order the runner would do them.

    ``holds`` (:func:`backfill.holds.held_dates` of the request) name the items another live run
    holds: the launch would be refused, so their action says by which run and whom.
    """
    pipeline = settings.pipeline
    held = {(hold.stage, hold.game_date): hold for hold in holds}
    start, end = min(request.dates), max(request.dates)
    daily = coverage.daily_coverage(warehouse, settings, start, end)
    daily = daily[daily["game_date"].isin(request.dates) & daily["stage"].isin(request.stages)]
    if request.only:  # a part of dates x stages: only its items
        wanted = set(request.items())
        daily = daily[[(stage, day) in wanted for stage, day in zip(daily["stage"], daily["game_date"])]]
    counts = stale.stale_counts(warehouse, settings, start, end, request.stages)
    stale_by_key = counts.groupby(["game_date", "stage"])["rows"].sum().to_dict() if len(counts) else {}
    rows = []
    for row in daily.itertuples():
        stage = pipeline.stage(row.stage)
        upstream = pipeline.upstream(stage)
        threshold = request.gate_pct(stage.gate_min_upstream_pct)
        gate_text = ""
        action = processor_for(stage, pipeline).plan_action
        if row.players_total == 0:
            action = "skip: no games"
        elif threshold is not None:
            measured = 100.0 * row.upstream_covered / row.players_total
            if upstream.name in request.stages and not request.skip_gates:
                gate_text = (
                    f"judged after this run rebuilds {upstream.label} ({upstream.label} now {measured:.1f}%)"
                )
            else:
                gate = judge(upstream.label, measured, threshold, request.skip_gates)
                gate_text = gate.reason
                if not gate.passed:
                    action = f"blocked by the {upstream.label} gate"
        hold = held.get((row.stage, row.game_date))
        if hold is not None:
            action = f"held by run {hold.run_id} ({hold.status}, started by {hold.who})"
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
                "upstream_coverage_pct": row.upstream_coverage_pct,
                "gate": gate_text,
                "stale_rows_to_go": int(stale_by_key.get((row.game_date, row.stage), 0))
                if action != "skip: no games" and not action.startswith(("blocked", "held"))
                else 0,
            }
        )
    plan = pd.DataFrame(rows, columns=PLAN_COLUMNS)
    order = {name: index for index, name in enumerate(pipeline.stage_names)}
    return plan.sort_values(
        ["game_date", "stage"], key=lambda c: c.map(order) if c.name == "stage" else c
    ).reset_index(drop=True)
