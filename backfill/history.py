"""Coverage history: what each check found and sent, and snapshots of coverage over time.

Stored in the ledger's database (``settings.ledger``: a SQLite path, or a ``postgresql://`` URL)
through SQLAlchemy Core, in the ledger's own tables (:mod:`backfill.ledger.tables`, schema version 4).

Besides the store, two pure readings of the snapshots for the console: coverage of a month or a
stage over time (:func:`coverage_over_time`), and when each gap appeared and when, and by which
check or run, it was fixed (:func:`gap_episodes`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from backfill.config import Settings
from backfill.coverage import GAP_STATUSES, STATUSES, daily_coverage, pct_column
from backfill.ledger import Ledger
from backfill.ledger.database import engine_for
from backfill.ledger.tables import alert_outbox, alerts, check_findings, checks, coverage_snapshots
from backfill.warehouse import Warehouse
from backfill.writes import note_write

UTC = dt.UTC

SNAPSHOT_FIELDS = ("status", "covered", "total", "expected_pct")
"""What a snapshot keeps of a (date, stage); a new row is stored only when one of these changed."""


def now_utc() -> dt.datetime:
    return dt.datetime.now(UTC)


def _aware(moment: dt.datetime | None) -> dt.datetime | None:
    """SQLite gives back naive datetimes; everything stored is UTC."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class PreviousState:
    """The open findings of the latest check that covered each date of a window."""

    findings: dict[tuple[str, dt.date, str], dict[str, Any]]
    covered_dates: frozenset[dt.date]
    check_ids: tuple[str, ...]


class HistoryStore:
    """Checks, findings, alerts and coverage snapshots in the ledger's database."""

    def __init__(self, ledger: str):
        # The watch's tables are the ledger's (schema version 4 on): the ledger creates or upgrades
        # the schema, and the store shares its engine.
        found = Ledger(ledger)
        found.ensure_schema()
        self.engine = engine_for(found.path)  # the location in its one form (backfill.config.ledger_location)

    @classmethod
    def of(cls, settings: Settings) -> HistoryStore:
        return cls(settings.ledger)

    @classmethod
    def existing(cls, settings: Settings) -> HistoryStore | None:
        """The store, or None when the ledger is a SQLite file not made yet (readers create nothing)."""
        if not Ledger(settings.ledger).exists():
            return None
        return cls(settings.ledger)

    # -- checks ---------------------------------------------------------------------------

    def record_check(
        self,
        check: dict[str, Any],
        findings: Iterable[dict[str, Any]],
        outbox: Iterable[dict[str, Any]] = (),
    ) -> None:
        """Store a check, its findings and its alerts to send (the outbox) in one transaction."""
        rows = [{"check_id": check["check_id"], **finding} for finding in findings]
        pending = list(outbox)
        with self.engine.begin() as connection:
            connection.execute(checks.insert().values(**check))
            if rows:
                connection.execute(check_findings.insert(), rows)
            if pending:
                connection.execute(alert_outbox.insert(), pending)
        note_write()

    def previous_state(self, warehouse: str, start: dt.date, end: dt.date, limit: int = 500) -> PreviousState:
        """For each date of the window, the open findings of the newest check whose window held it."""
        with self.engine.connect() as connection:
            earlier = connection.execute(
                sa.select(checks.c.check_id, checks.c.window_start, checks.c.window_end)
                .where(
                    checks.c.warehouse == warehouse,
                    checks.c.window_start <= end,
                    checks.c.window_end >= start,
                )
                .order_by(checks.c.finished_at.desc())
                .limit(limit)
            ).all()
            owner: dict[dt.date, str] = {}
            wanted = (end - start).days + 1
            for check_id, first, last in earlier:
                day = max(first, start)
                while day <= min(last, end):
                    owner.setdefault(day, check_id)
                    day += dt.timedelta(days=1)
                if len(owner) == wanted:
                    break
            used = tuple(sorted(set(owner.values())))
            rows = (
                connection.execute(
                    sa.select(check_findings).where(
                        check_findings.c.check_id.in_(used),
                        check_findings.c.game_date.between(start, end),
                        check_findings.c.change != "recovered",
                    )
                )
                .mappings()
                .all()
                if used
                else []
            )
        findings = {
            (row["kind"], row["game_date"], row["subject"]): dict(row)
            for row in rows
            if owner.get(row["game_date"]) == row["check_id"]
        }
        return PreviousState(findings, frozenset(owner), used)

    def list_checks(self, warehouse: str | None = None, limit: int = 20) -> pd.DataFrame:
        """The latest checks, newest first, with how many alerts each sent and failed."""
        sent = sa.func.sum(sa.case((alerts.c.status == "sent", 1), else_=0))
        failed = sa.func.sum(sa.case((alerts.c.status == "failed", 1), else_=0))
        counts = (
            sa.select(alerts.c.check_id, sent.label("alerts_sent"), failed.label("alerts_failed"))
            .group_by(alerts.c.check_id)
            .subquery()
        )
        query = (
            sa.select(checks, counts.c.alerts_sent, counts.c.alerts_failed)
            .outerjoin(counts, counts.c.check_id == checks.c.check_id)
            .order_by(checks.c.finished_at.desc())
            .limit(limit)
        )
        if warehouse is not None:
            query = query.where(checks.c.warehouse == warehouse)
        frame = self._frame(query)
        for column in ("alerts_sent", "alerts_failed"):
            frame[column] = frame[column].fillna(0).astype("int64")
        return frame

    def last_check(self, warehouse: str | None = None) -> dict[str, Any] | None:
        frame = self.list_checks(warehouse, limit=1)
        return None if frame.empty else frame.iloc[0].to_dict()

    def findings(self, check_id: str) -> pd.DataFrame:
        query = (
            sa.select(check_findings)
            .where(check_findings.c.check_id == check_id)
            .order_by(check_findings.c.game_date, check_findings.c.kind, check_findings.c.subject)
        )
        return self._frame(query)

    # -- alerts ---------------------------------------------------------------------------

    def record_alert(self, row: dict[str, Any]) -> None:
        with self.engine.begin() as connection:
            connection.execute(alerts.insert().values(**row))
        note_write()

    def alerts(self, check_id: str | None = None, limit: int = 50) -> pd.DataFrame:
        """Alert deliveries, newest first (of one check, or of all)."""
        query = sa.select(alerts).order_by(alerts.c.alert_id.desc()).limit(limit)
        if check_id is not None:
            query = query.where(alerts.c.check_id == check_id)
        return self._frame(query)

    # -- snapshots ------------------------------------------------------------------------

    def record_snapshot(
        self, warehouse: str, source: str, source_id: str, daily: pd.DataFrame, taken_at: dt.datetime
    ) -> int:
        """Store the (date, stage) rows of daily coverage that differ from their latest snapshot.

        ``daily`` has the columns of :func:`backfill.coverage.daily_coverage`. Returns rows stored.
        """
        if daily.empty:
            return 0
        current = snapshot_rows(daily)
        first, last = min(current["game_date"]), max(current["game_date"])
        latest = self.snapshots(warehouse, first, last, latest_only=True)
        if not latest.empty:
            keys = ["game_date", "stage"]
            merged = current.merge(
                latest[keys + list(SNAPSHOT_FIELDS)], on=keys, how="left", suffixes=("", "_was")
            )
            same = pd.Series(True, index=merged.index)
            for field in SNAPSHOT_FIELDS:
                now, was = merged[field], merged[f"{field}_was"]
                same &= (now == was) | (now.isna() & was.isna())
            current = current[~same.to_numpy()]
        if current.empty:
            return 0
        rows = [
            {
                "warehouse": warehouse,
                "taken_at": taken_at,
                "source": source,
                "source_id": source_id,
                **{key: _plain(value) for key, value in row.items()},
            }
            for row in current.to_dict("records")
        ]
        with self.engine.begin() as connection:
            connection.execute(coverage_snapshots.insert(), rows)
        note_write()
        return len(rows)

    def snapshots(
        self,
        warehouse: str,
        start: dt.date | None = None,
        end: dt.date | None = None,
        *,
        stage: str | None = None,
        latest_only: bool = False,
    ) -> pd.DataFrame:
        """Snapshots of a warehouse (oldest first), or only the latest of each (date, stage)."""
        table = coverage_snapshots
        conditions = [table.c.warehouse == warehouse]
        if start is not None:
            conditions.append(table.c.game_date >= start)
        if end is not None:
            conditions.append(table.c.game_date <= end)
        if stage is not None:
            conditions.append(table.c.stage == stage)
        if latest_only:
            newest = (
                sa.select(sa.func.max(table.c.snapshot_id).label("snapshot_id"))
                .where(*conditions)
                .group_by(table.c.game_date, table.c.stage)
                .subquery()
            )
            query = sa.select(table).join(newest, newest.c.snapshot_id == table.c.snapshot_id)
        else:
            query = sa.select(table).where(*conditions).order_by(table.c.snapshot_id)
        return self._frame(query)

    def _frame(self, query) -> pd.DataFrame:
        with self.engine.connect() as connection:
            result = connection.execute(query)
            frame = pd.DataFrame(result.mappings().all(), columns=list(result.keys()))
        for column in frame.columns:
            if column.endswith("_at"):
                frame[column] = [_aware(value) for value in frame[column]]
        return frame


def _plain(value: Any) -> Any:
    """Numpy scalars and NaN as plain Python values for the database."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and value != value:
            return None
    return value


def snapshot_rows(daily: pd.DataFrame) -> pd.DataFrame:
    """The compact snapshot of daily coverage: date, stage, status, covered, total, expected %."""
    return pd.DataFrame(
        {
            "game_date": daily["game_date"],
            "stage": daily["stage"],
            "status": daily["status"],
            "covered": daily["players_covered"].astype("int64"),
            "total": daily["players_total"].astype("int64"),
            "expected_pct": daily["expected_coverage_pct"].astype("float64"),
        }
    ).reset_index(drop=True)


def record_run_snapshot(
    settings: Settings,
    run_id: str,
    warehouse: Warehouse,
    dates: Iterable[dt.date],
    *,
    daily: pd.DataFrame | None = None,
    now=now_utc,
) -> int:
    """Store the coverage a finished run left on its dates (for the runner to call at its end).

    Measures the dates' span once unless the caller passes the ``daily`` coverage it has already
    measured. Returns the snapshot rows stored (only those that changed).
    """
    dates = sorted(set(dates))
    if not dates:
        return 0
    if daily is None:
        daily = daily_coverage(warehouse, settings, dates[0], dates[-1])
    daily = daily[daily["game_date"].isin(dates)]
    return HistoryStore.of(settings).record_snapshot(settings.warehouse, "run", run_id, daily, now())


# -- readings for the console ---------------------------------------------------------------------


def coverage_over_time(snapshots: pd.DataFrame, by: str = "period") -> pd.DataFrame:
    """Coverage of each month (``by="period"``) or of each stage (``by="stage"``) at every snapshot time.

    At each time a snapshot was taken, every (date, stage) counts with its latest snapshot so far;
    the covered and total player-games are added up. Columns: taken_at, stage, period (when by
    period), covered, total, coverage_pct, gap_dates.
    """
    columns = ["taken_at", "stage", "period", "covered", "total", "coverage_pct", "gap_dates"]
    if snapshots.empty:
        return pd.DataFrame(columns=columns)
    frame = snapshots.sort_values("snapshot_id")
    times = sorted(frame["taken_at"].unique())
    rows = []
    for moment in times:
        upto = frame[frame["taken_at"] <= moment].drop_duplicates(["game_date", "stage"], keep="last")
        upto = upto.assign(
            period=[f"{day:%Y-%m}" for day in upto["game_date"]],
            is_gap=upto["status"].isin(GAP_STATUSES),
        )
        keys = ["stage", "period"] if by == "period" else ["stage"]
        summed = upto.groupby(keys, sort=True).agg(
            covered=("covered", "sum"), total=("total", "sum"), gap_dates=("is_gap", "sum")
        )
        for key, row in summed.iterrows():
            stage, period = key if by == "period" else (key, None)
            rows.append(
                {
                    "taken_at": moment,
                    "stage": stage,
                    "period": period,
                    "covered": int(row["covered"]),
                    "total": int(row["total"]),
                    "gap_dates": int(row["gap_dates"]),
                }
            )
    result = pd.DataFrame(rows, columns=[c for c in columns if c != "coverage_pct"])
    result["coverage_pct"] = pct_column(result["covered"], result["total"])
    return result[columns]


def gap_episodes(snapshots: pd.DataFrame) -> pd.DataFrame:
    """Each time a (date, stage) fell below the mark: when, how, and when and by what it was fixed.

    An episode opens at the first snapshot with a gap status (missing, blocked, partial) and closes
    at the next snapshot without one; ``fixed_by`` names the check or run that took that snapshot.
    Columns: game_date, stage, status (the worst seen), appeared_at, appeared_in, fixed_at,
    fixed_by, fixed_status, fixed_pct (open episodes have no fixed_*). Newest first.
    """
    columns = [
        "game_date",
        "stage",
        "status",
        "appeared_at",
        "appeared_in",
        "covered",
        "total",
        "fixed_at",
        "fixed_by",
        "fixed_status",
        "fixed_pct",
    ]
    if snapshots.empty:
        return pd.DataFrame(columns=columns)
    episodes = []
    ordered = snapshots.sort_values("snapshot_id")
    for (day, stage), rows in ordered.groupby(["game_date", "stage"], sort=False):
        current: dict[str, Any] | None = None
        for row in rows.itertuples():
            is_gap = row.status in GAP_STATUSES
            source = f"{row.source} {row.source_id}"
            if is_gap and current is None:
                current = {
                    "game_date": day,
                    "stage": stage,
                    "status": row.status,
                    "appeared_at": row.taken_at,
                    "appeared_in": source,
                    "covered": row.covered,
                    "total": row.total,
                    "fixed_at": None,
                    "fixed_by": None,
                    "fixed_status": None,
                    "fixed_pct": None,
                }
            elif is_gap and current is not None:
                if STATUSES.index(row.status) < STATUSES.index(current["status"]):
                    current["status"] = row.status
                current["covered"] = min(current["covered"], row.covered)
            elif current is not None:
                current.update(
                    fixed_at=row.taken_at,
                    fixed_by=source,
                    fixed_status=row.status,
                    fixed_pct=row.expected_pct,
                )
                episodes.append(current)
                current = None
        if current is not None:
            episodes.append(current)
    frame = pd.DataFrame(episodes, columns=columns)
    return frame.sort_values(
        ["appeared_at", "game_date", "stage"], ascending=[False, True, True]
    ).reset_index(drop=True)
