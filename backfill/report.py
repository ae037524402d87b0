"""The gap report (SPEC 4.2, 4.6): coverage by month, every gap with its reason, and stale rows.

:func:`gap_report` measures a period once and holds the result as an immutable :class:`GapReport`;
:mod:`backfill.export` turns it into CSV, JSON, Markdown (the team's hand-off note) or Excel.
:func:`coverage_table` is the per-month or per-date table of ``python -m backfill coverage``
(SPEC 4.7), so the CLI, the report and the console show the same numbers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from backfill import coverage
from backfill.config import Settings
from backfill.coverage import GAP_STATUSES
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.doctor import check_before_reading
from backfill.errors import BadInput
from backfill.pipeline import Pipeline
from backfill.stale import stale_counts
from backfill.warehouse import Warehouse

if TYPE_CHECKING:  # the ledger (SQLAlchemy) is imported only by the reports that list runs
    from backfill.ledger import Ledger

COVERAGE_COLUMNS = (
    "period",
    "stage",
    "players_total",
    "players_covered",
    "player_coverage_pct",
    "player_games_total",
    "player_games_covered",
    "player_game_coverage_pct",
    "expected_coverage_pct",
    "status",
    # Extras beyond SPEC 4.7's required fields:
    "season",
    "expected_total",
    "expected_covered",
    "bootstrap_player_games",
    "upstream_coverage_pct",
    "note",
)
"""Columns of the coverage table, SPEC 4.7's required fields first.

``bootstrap_player_games`` counts (date, player) rows of bootstrap players (for one date: its
bootstrap players). ``upstream_coverage_pct`` is the upstream stage's player-game coverage beside a
stage whose upstream is not the reference (MLFS beside predictions).
"""

GAP_COLUMNS = (
    "game_date",
    "season",
    "stage",
    "status",
    "players_total",
    "players_covered",
    "expected_total",
    "expected_covered",
    "player_game_coverage_pct",
    "expected_coverage_pct",
    "upstream_coverage_pct",
    "reason",
    "expected",
)
"""Columns of the gaps table; ``expected`` is True for bootstrap dates (listed, but not gaps)."""

STALE_COLUMNS = ("game_date", "table_name", "category", "rows")

RUN_COLUMNS = (
    "run_id",
    "created_by",
    "created_at",
    "finished_at",
    "status",
    "first_date",
    "last_date",
    "dates",
    "stages",
    "items",
    "done",
    "failed",
    "blocked",
    "other",
    "retried",
    "rerun_of",
    "message",
)
"""Columns of the runs table: who started a run and when, what it covered, and how it ended.

``dates`` counts the run's dates (all of them, also those outside the report's period); ``items`` its
(stage, date) work items, split into ``done``, ``failed``, ``blocked`` and ``other`` (skipped for
lack of games, cancelled, or unfinished); ``retried`` counts items that took more than one attempt.
"""

RUNS_SCANNED = 1000
"""Newest runs of the ledger looked at for a report: far more than a period's hand-off needs."""


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, eq=False)
class GapReport:
    """What a gap report says about one period; the writers only format it."""

    period: tuple[dt.date, dt.date]
    stages: tuple[str, ...]
    monthly: pd.DataFrame
    """Coverage by month and stage (:data:`COVERAGE_COLUMNS`)."""
    gaps: pd.DataFrame
    """Gap dates and bootstrap dates (:data:`GAP_COLUMNS`)."""
    stale: pd.DataFrame
    """Stale rows per date, table and category (:data:`STALE_COLUMNS`)."""
    generated_at: dt.datetime
    warehouse: str
    """One line naming the warehouse measured (no secrets)."""
    ok_pct: float
    pipeline: Pipeline
    """The stages the report speaks of: labels, upstreams, gates and bootstrap rules."""
    runs: pd.DataFrame | None = None
    """Backfill runs of the period, when a run ledger is passed in; None: no ledger yet."""
    no_data: str | None = None
    """The period held no games: the one line that says so, and what the warehouse holds."""

    @property
    def labels(self) -> dict[str, str]:
        return self.pipeline.labels

    @property
    def gates(self) -> dict[str, float]:
        """Gate thresholds by the upstream stage they judge (``{"mlfs": 90.0}``)."""
        return {
            self.pipeline.upstream(stage).name: stage.gate_min_upstream_pct
            for stage in self.pipeline.backfillable
            if stage.name in self.stages and stage.gate_min_upstream_pct is not None
        }

    @property
    def min_history_games(self) -> int | dict[str, int]:
        """The bootstrap rule: one number when every stage shares it, else one per stage."""
        rules = {name: self.pipeline.stage(name).bootstrap_min_history for name in self.stages}
        return next(iter(rules.values())) if len(set(rules.values())) == 1 else rules

    @property
    def real_gaps(self) -> pd.DataFrame:
        """Gap rows that need work (bootstrap dates left out)."""
        return self.gaps[~self.gaps["expected"]].reset_index(drop=True)

    @property
    def bootstrap_dates(self) -> pd.DataFrame:
        """Bootstrap rows: below ``ok_pct`` only because of bootstrap players."""
        return self.gaps[self.gaps["expected"]].reset_index(drop=True)


# -- measuring ------------------------------------------------------------------------------------


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _reason(row: Any, pipeline: Pipeline) -> str:
    """One line saying why a (date, stage) row has its status."""
    if row.status == "no_games":
        return "no games"
    if row.status == "missing":
        return f"no {pipeline.label(row.stage)} rows"
    if row.status == "blocked":
        stage = pipeline.stage(row.stage)
        upstream = pipeline.upstream(stage)
        return f"{upstream.label} covers {row.upstream_coverage_pct:.1f}% (gate {stage.gate_min_upstream_pct:g}%)"
    real_missing = int(row.expected_total - row.expected_covered)
    bootstrap_missing = int(row.players_total - row.players_covered) - real_missing
    parts = []
    if real_missing:
        parts.append(f"{real_missing} of {plural(int(row.expected_total), 'player')} missing")
    if bootstrap_missing:
        parts.append(f"{plural(bootstrap_missing, 'bootstrap player')} (expected)")
    return "; ".join(parts) or "complete"


def _measured(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    by_month: bool,
    snapshot: CoverageSnapshot | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Daily coverage (MLFS coverage already beside predictions), and coverage by month when asked;
    from the coverage snapshot kept between processes (unless the caller has one), so only dates
    changed since the last look are measured."""
    snapshot = snapshot or CoverageSnapshot.persisted(warehouse, settings)
    return snapshot.coverage(start, end) if by_month else (snapshot.daily(start, end), None)


def _with_reasons(daily: pd.DataFrame, pipeline: Pipeline) -> pd.DataFrame:
    """Daily coverage with a reason per row."""
    return daily.assign(reason=[_reason(row, pipeline) for row in daily.itertuples()])


def _monthly_table(settings: Settings, monthly: pd.DataFrame) -> pd.DataFrame:
    monthly["bootstrap_player_games"] = monthly["player_games_total"] - monthly["expected_total"]
    pipeline = settings.pipeline
    by_stage = {
        stage: frame.set_index("period")["player_game_coverage_pct"]
        for stage, frame in monthly.groupby("stage")
    }
    upstream_of = {
        stage.name: pipeline.upstream(stage).name
        for stage in pipeline.backfillable
        if pipeline.upstream(stage) is not pipeline.reference
    }
    monthly["upstream_coverage_pct"] = [
        by_stage[upstream_of[stage]].get(period) if stage in upstream_of else None
        for period, stage in zip(monthly["period"], monthly["stage"])
    ]
    return monthly


def _date_table(daily: pd.DataFrame) -> pd.DataFrame:
    # A date's distinct players are its player-games, so both pairs of figures agree.
    return daily.assign(
        period=[f"{day:%Y-%m-%d}" for day in daily["game_date"]],
        player_games_total=daily["players_total"],
        player_games_covered=daily["players_covered"],
        player_coverage_pct=daily["player_game_coverage_pct"],
        bootstrap_player_games=daily["bootstrap_players"],
        note=daily["reason"],
    )


def _stage_order(pipeline: Pipeline):
    """Sort key: stages in dependency order, other columns as they are."""
    order = {name: index for index, name in enumerate(pipeline.stage_names)}
    return lambda column: column.map(order) if column.name == "stage" else column


def _finish(frame: pd.DataFrame, columns: Iterable[str], stages: tuple[str, ...]) -> pd.DataFrame:
    return frame[frame["stage"].isin(stages)][list(columns)].reset_index(drop=True)


def coverage_table(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    by: str = "month",
    stage: str | Iterable[str] | None = None,
    snapshot: CoverageSnapshot | None = None,
) -> pd.DataFrame:
    """Coverage per month (or per date) and stage with SPEC 4.7's fields (:data:`COVERAGE_COLUMNS`)."""
    stages = _stages(settings.pipeline, stage)
    if by not in ("month", "date"):
        raise BadInput(f"unknown grouping {by!r} (choose from month, date)")
    daily, monthly = _measured(warehouse, settings, start, end, by_month=by == "month", snapshot=snapshot)
    if monthly is None:
        table = _date_table(_with_reasons(daily, settings.pipeline))
    else:
        table = _monthly_table(settings, monthly)
    table = table.sort_values(["period", "stage"], key=_stage_order(settings.pipeline))
    return _finish(table, COVERAGE_COLUMNS, stages)


def _stages(pipeline: Pipeline, stage: str | Iterable[str] | None) -> tuple[str, ...]:
    return pipeline.stage_names if stage is None else pipeline.check_stages(stage)


def gaps_table(daily: pd.DataFrame, pipeline: Pipeline) -> pd.DataFrame:
    """Dates below ``ok_pct``: real gaps, and bootstrap dates flagged ``expected``."""
    rows = daily[daily["status"].isin((*GAP_STATUSES, "bootstrap"))]
    rows = rows.assign(expected=rows["status"] == "bootstrap")
    return rows.sort_values(["game_date", "stage"], key=_stage_order(pipeline))


def gap_report(
    warehouse: Warehouse,
    settings: Settings,
    start: dt.date,
    end: dt.date,
    stage: str | Iterable[str] | None = None,
    *,
    runs: pd.DataFrame | None = None,
    now: Callable[[], dt.datetime] = _utc_now,
    snapshot: CoverageSnapshot | None = None,
) -> GapReport:
    """Measure a period: coverage by month, gaps with reasons, stale rows; ``runs`` from a ledger."""
    stages = _stages(settings.pipeline, stage)
    # Stale rows read every column a stage names: a missing one is refused in doctor's words.
    check_before_reading(warehouse)
    daily, measured = _measured(warehouse, settings, start, end, by_month=True, snapshot=snapshot)
    assert measured is not None
    monthly = _monthly_table(settings, measured)
    monthly = monthly.sort_values(["period", "stage"], key=_stage_order(settings.pipeline))
    stale = stale_counts(warehouse, settings, start, end, stages)
    bounds = snapshot.bounds if snapshot is not None else lambda: coverage.data_bounds(warehouse)
    return GapReport(
        period=(start, end),
        stages=stages,
        monthly=_finish(monthly, COVERAGE_COLUMNS, stages),
        gaps=_finish(
            _with_reasons(gaps_table(daily, settings.pipeline), settings.pipeline), GAP_COLUMNS, stages
        ),
        stale=stale[list(STALE_COLUMNS)].reset_index(drop=True),
        generated_at=now(),
        warehouse=warehouse.describe(),
        ok_pct=settings.ok_pct,
        pipeline=settings.pipeline,
        runs=runs,
        no_data=coverage.no_data_note(coverage.has_games(daily), start, end, bounds),
    )


def _run_dates(params: dict) -> list[dt.date]:
    dates = []
    for text in params.get("dates") or []:
        try:
            dates.append(dt.date.fromisoformat(str(text)))
        except ValueError:  # a hand-edited ledger: skip what is not a date rather than fail the report
            continue
    return sorted(dates)


def runs_table(
    ledger: Ledger,
    start: dt.date,
    end: dt.date,
    stages: Iterable[str],
    limit: int = RUNS_SCANNED,
) -> pd.DataFrame:
    """Runs of the ledger with a date in the period, newest first, and their outcomes (:data:`RUN_COLUMNS`).

    A run counts when one of its dates falls in the period and it ran one of ``stages``.
    """
    wanted = set(stages)
    rows = []
    for run in ledger.list_runs(limit):
        dates = _run_dates(run.params)
        if not any(start <= day <= end for day in dates):
            continue
        items = ledger.items(run.run_id)
        if not wanted & ({item["stage"] for item in items} | set(run.params.get("stages") or ())):
            continue
        statuses = [item["status"] for item in items]
        done, failed, blocked = (statuses.count(status) for status in ("done", "failed", "blocked"))
        rows.append(
            {
                "run_id": run.run_id,
                "created_by": run.created_by,
                "created_at": run.created_at,
                "finished_at": run.finished_at,
                "status": run.status,
                "first_date": dates[0],
                "last_date": dates[-1],
                "dates": len(dates),
                "stages": ", ".join(run.params.get("stages") or sorted({item["stage"] for item in items})),
                "items": len(items),
                "done": done,
                "failed": failed,
                "blocked": blocked,
                "other": len(items) - done - failed - blocked,
                "retried": sum(1 for item in items if (item["attempts"] or 0) > 1),
                "rerun_of": run.parent_run_id,
                "message": run.message,
            }
        )
    return pd.DataFrame(rows, columns=list(RUN_COLUMNS)).astype({"first_date": object, "last_date": object})


def ledger_runs(
    location: str | Path, start: dt.date, end: dt.date, stages: Iterable[str]
) -> pd.DataFrame | None:
    """The runs table of the ledger at ``location``, or None when there is no such (SQLite) file.

    A report never creates a ledger (a mistyped path stays absent); an unreadable one is a one-line error.
    """
    from backfill.ledger import Ledger

    ledger = Ledger(location)
    if not ledger.exists():
        return None
    return runs_table(ledger, start, end, stages)


# -- writers --------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A JSON-ready value: ISO dates, Python numbers, None for missing."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, (dt.date, dt.datetime, pd.Timestamp)):
        return value.isoformat()
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows of a table as JSON-ready dicts."""
    return [{column: plain(value) for column, value in row.items()} for row in frame.to_dict("records")]
