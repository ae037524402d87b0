"""Cached reads of the watch's history (checks, findings, alerts, coverage snapshots) for the pages.

Results are reused for ``settings.cache_ttl_s`` seconds, like every other query of the console
(see :mod:`ui.data`); "Refresh data" in the sidebar drops them. A ledger that does not exist yet
reads as empty and is not created.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pandas as pd
import sqlalchemy as sa
import streamlit as st

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.history import HistoryStore
from ui.data import MAX_ENTRIES, MEMORY_TTL, cache_period
from ui.format import NO_VALUE

CHECKS_SHOWN = 50
"""Checks read for the History page, newest first."""

CHECK_COLUMNS = {
    "finished_at": "Checked at",
    "window": "Window",
    "status": "Result",
    "new_problems": "New",
    "open_problems": "Open",
    "recovered": "Recovered",
    "alerts": "Alerts",
    "checked_by": "By",
    "check_id": "Check",
}

EPISODE_COLUMNS = {
    "game_date": "Date",
    "stage": "Stage",
    "status": "Worst status",
    "covered_of_total": "Covered (worst)",
    "appeared_at": "Appeared",
    "appeared_in": "Seen first by",
    "fixed_at": "Fixed",
    "fixed_by": "Fixed by",
    "fixed_pct": "Expected % after",
}


class HistoryUnavailable(Exception):
    """The ledger database cannot be read now (a PostgreSQL ledger down, its driver missing)."""


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Turn a database failure into one line a page can show instead of a traceback."""
    try:
        yield
    except (sa.exc.SQLAlchemyError, OSError, ImportError, BackfillError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HistoryUnavailable(f"the check history cannot be read: {first[:200]}") from exc


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _checks(settings: Settings, limit: int, period: int) -> pd.DataFrame:
    with _reading():
        store = HistoryStore.existing(settings)
        return pd.DataFrame() if store is None else store.list_checks(settings.warehouse, limit)


def checks(settings: Settings, limit: int = CHECKS_SHOWN) -> pd.DataFrame:
    """The latest checks of this warehouse, newest first (empty when none ran)."""
    return _checks(settings, limit, cache_period(settings))


def last_check(settings: Settings) -> dict | None:
    frame = checks(settings)
    return None if frame.empty else frame.iloc[0].to_dict()


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _check_details(settings: Settings, check_id: str, period: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    with _reading():
        store = HistoryStore.existing(settings)
        if store is None:
            return pd.DataFrame(), pd.DataFrame()
        return store.findings(check_id), store.alerts(check_id)


def check_details(settings: Settings, check_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A check's findings and its alert deliveries."""
    return _check_details(settings, check_id, cache_period(settings))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _snapshots(settings: Settings, period: int) -> pd.DataFrame:
    with _reading():
        store = HistoryStore.existing(settings)
        return pd.DataFrame() if store is None else store.snapshots(settings.warehouse)


def snapshots(settings: Settings) -> pd.DataFrame:
    """Every coverage snapshot of this warehouse, oldest first."""
    return _snapshots(settings, cache_period(settings))


def _time_text(moment) -> str:
    return "" if moment is None or pd.isna(moment) else f"{moment:%Y-%m-%d %H:%M} UTC"


def check_summary(check: dict) -> str:
    """``2026-11-30 08:00 UTC, 2022-01-03 to 2022-01-09: problems (1 new, 1 open, 0 recovered)``."""
    return (
        f"{_time_text(check['finished_at'])}, {check['window_start']} to {check['window_end']}: "
        f"{check['status']} ({check['new_problems']} new, {check['open_problems']} open, "
        f"{check['recovered']} recovered)"
    )


def checks_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The checks as people read them."""
    table = frame.assign(
        finished_at=[_time_text(moment) for moment in frame["finished_at"]],
        window=[f"{a} to {b}" for a, b in zip(frame["window_start"], frame["window_end"])],
        alerts=[
            f"{sent} sent" + (f", {failed} failed" if failed else "") if sent or failed else "none"
            for sent, failed in zip(frame["alerts_sent"], frame["alerts_failed"])
        ],
    )
    return table[list(CHECK_COLUMNS)].rename(columns=CHECK_COLUMNS)


def findings_table(findings: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """A check's findings as people read them: stage labels, and a dash where there is no value."""
    table = findings[list(FINDING_COLUMNS)].assign(
        subject=[labels.get(subject, subject) for subject in findings["subject"]]
    )
    return table.astype(object).where(table.notna(), NO_VALUE).rename(columns=FINDING_COLUMNS)


def alerts_table(alerts: pd.DataFrame) -> pd.DataFrame:
    """A check's alerts as people read them, a dash where there is no value (no error)."""
    table = alerts[list(ALERT_COLUMNS)]
    return table.astype(object).where(table.notna(), NO_VALUE).rename(columns=ALERT_COLUMNS)


FINDING_COLUMNS = {
    "change": "Change",
    "game_date": "Date",
    "kind": "Kind",
    "subject": "Stage or table",
    "status": "Status",
    "previous_status": "Was",
    "covered": "Covered",
    "total": "Total",
}

ALERT_COLUMNS = {
    "channel": "Channel",
    "target": "To",
    "status": "Delivery",
    "attempts": "Attempts",
    "error": "Error",
    "new_problems": "New",
    "resolved": "Resolved",
}

SNAPSHOT_TIME = "%Y-%m-%d %H:%M UTC"
"""Snapshot times on the chart: 24-hour, in UTC, said so (d3 time format)."""


def episodes_table(episodes: pd.DataFrame, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """Gap episodes as people read them (stage labels); an open one says so."""
    labels = labels or {}
    table = episodes.assign(
        stage=[labels.get(stage, stage) for stage in episodes["stage"]],
        covered_of_total=[f"{c} / {t}" for c, t in zip(episodes["covered"], episodes["total"])],
        appeared_at=[_time_text(moment) for moment in episodes["appeared_at"]],
        fixed_at=[_time_text(moment) or "still open" for moment in episodes["fixed_at"]],
        fixed_by=[by or "" for by in episodes["fixed_by"]],
    )
    return table[list(EPISODE_COLUMNS)].rename(columns=EPISODE_COLUMNS)
