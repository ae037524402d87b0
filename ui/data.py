"""Cached access to the backend: the warehouse adapter as a resource, query results as data.

Cache keys are the settings (a frozen dataclass, hashed by value) and plain dates, never the
adapter, so two warehouses or two sets of thresholds never share results. Warehouse results are
keyed by the warehouse's fingerprint, read once per rerun (:func:`begin_rerun`): every figure of a
rerun comes from that one moment, so two widgets never disagree, and a change made by another
process is seen at the next rerun. When the warehouse is busy the last good fingerprint is used, so
the page shows the last good figures (from the cache) while it waits. The decorator's ``ttl`` only
frees memory.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import pandas as pd
import streamlit as st

from backfill import cost, coverage, freshness, stale
from backfill.config import Settings, load_settings
from backfill.cost_labels import job_labels
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.demo import ensure_demo
from backfill.doctor import check_before_writing
from backfill.errors import BackfillError, BadInput
from backfill.faults import is_transient
from backfill.ledger import Ledger
from backfill.warehouse import Warehouse, connect

MEMORY_TTL = dt.timedelta(hours=1)
"""How long an unused result stays in memory; a ``cache_ttl_s`` above this is capped by it."""

MAX_ENTRIES = 128
"""Cached results per function (a few date ranges times a few periods is plenty)."""


def settings() -> Settings:
    """The settings in force, read on every run (cheap), so a changed environment takes effect."""
    return load_settings()


CONSOLE_LOCK_WAIT_S = 0.5
"""How long a console read waits for another process's lock on the warehouse before the page shows
its waiting state (and retries by itself) instead of hanging."""

READING_KEY = "console_reading"
"""Session key of this rerun's :class:`Reading`."""


@st.cache_resource(show_spinner="Opening the warehouse (on first start this builds the demo data)…")
def warehouse(settings: Settings) -> Warehouse:
    """The warehouse adapter of these settings; builds the demo file when it is missing (SPEC 4.8)."""
    ensure_demo(settings)
    adapter = connect(settings)
    adapter.base_labels = job_labels("page")  # every job the console's pages send (cost by action)
    if hasattr(adapter, "lock_wait_s"):  # a file another process may hold (DuckDB): wait briefly
        adapter.lock_wait_s = CONSOLE_LOCK_WAIT_S
    return adapter


@dataclass(frozen=True)
class Reading:
    """The moment this rerun's figures are of."""

    fingerprint: str
    """The warehouse's fingerprint: part of every cached warehouse result's key."""
    as_of: dt.datetime
    """When the warehouse was last seen with this fingerprint (UTC)."""
    waiting: BaseException | None = None
    """Why the warehouse could not be read now (the figures are then the last good ones)."""


class _LastGood:
    """The newest reading of one warehouse, shared by every session of this server."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reading: Reading | None = None
        self.reread = False
        """Set by the Refresh button: the next rerun reads the warehouse, however young the reading."""
        _LAST_GOOD_HOLDERS.append(self)


_LAST_GOOD_HOLDERS: list[_LastGood] = []


@st.cache_resource(show_spinner=False)
def _last_good(settings: Settings) -> _LastGood:
    return _LastGood()


def read_fingerprint(
    settings: Settings, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> Reading:
    """Read the warehouse's fingerprint now; on a busy warehouse, the last good reading marked waiting.

    Raises when the warehouse is busy and nothing was ever read, or when the error is not transient.
    """
    last = _last_good(settings)
    try:
        fingerprint = freshness.warehouse_fingerprint(warehouse(settings), settings.pipeline)
    except Exception as exc:
        if not is_transient(exc) or last.reading is None:
            raise
        return replace(last.reading, waiting=exc)
    reading = Reading(fingerprint, clock())
    with last.lock:
        last.reading = reading
        last.reread = False
    return reading


READING_FRESH_S = 15.0
"""While a run writes the warehouse, a reading this young (any session's) is used again by a rerun
instead of reading the warehouse: reruns come in bursts (clicks, a page following a run), and on
DuckDB every read takes the file from the backfill writing it. With no run writing, every rerun
reads (the file is free, and an outside change must show at once). The sidebar's freshness check
reads it every so often regardless."""


def _recent(settings: Settings, clock: Callable[[], dt.datetime]) -> Reading | None:
    holder = _last_good(settings)
    last = holder.reading
    max_age = min(settings.cache_ttl_s, READING_FRESH_S)
    if holder.reread or last is None or (clock() - last.as_of).total_seconds() >= max_age:
        return None
    return last if _a_run_writes(settings) else None


def _a_run_writes(settings: Settings) -> bool:
    """Whether the ledger has a queued or running run on this warehouse (a read of the ledger only)."""
    ledger = Ledger(settings.ledger)
    try:
        if not ledger.exists():
            return False
        url = warehouse(settings).url
        return any(run.warehouse == url for run in ledger.list_active())
    except BackfillError:  # an unreadable ledger: read the warehouse, as with no run
        return False


def begin_rerun(
    settings: Settings, clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
) -> Reading:
    """The fingerprint of this rerun (read now unless a very recent one is known); every cached
    warehouse read of the rerun uses it."""
    st.session_state.pop(READING_KEY, None)
    reading = _recent(settings, clock) or read_fingerprint(settings, clock)
    st.session_state[READING_KEY] = reading
    return reading


def refresh() -> None:
    """Button callback: drop every cached result; the next rerun reads the warehouse again."""
    st.cache_data.clear()
    for holder in _LAST_GOOD_HOLDERS:
        holder.reread = True


def reading(settings: Settings) -> Reading:
    """This rerun's reading (read now if app.py has not yet)."""
    current = st.session_state.get(READING_KEY)
    return current if current is not None else begin_rerun(settings)


def data_token(settings: Settings) -> str:
    """Key of this rerun's warehouse results: the fingerprint the rerun read."""
    return reading(settings).fingerprint


def cache_period(settings: Settings, now: Callable[[], float] = time.time) -> int:
    """Number of the current ``cache_ttl_s``-long period, for stores without a fingerprint (history)."""
    return int(now() // max(settings.cache_ttl_s, 1))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _data_bounds(settings: Settings, fingerprint: str) -> tuple[dt.date, dt.date] | None:
    return coverage.data_bounds(warehouse(settings))


def data_bounds(settings: Settings) -> tuple[dt.date, dt.date] | None:
    """First and last game date in the warehouse, or None when it holds no games."""
    return _data_bounds(settings, data_token(settings))


@st.cache_resource(show_spinner=False)
def snapshot(settings: Settings) -> CoverageSnapshot:
    """Coverage kept between reruns, sessions and processes (loaded from the kept snapshot when the
    server starts); each refresh re-measures only changed dates."""
    return CoverageSnapshot.persisted(warehouse(settings), settings)


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _coverage(
    settings: Settings, start: dt.date, end: dt.date, fingerprint: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return snapshot(settings).coverage(start, end)


def daily_coverage(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per (date, stage) of the range: counts, coverage and status."""
    return _coverage(settings, start, end, data_token(settings))[0]


def monthly_coverage(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per (month, stage): the team's player coverage beside player-game figures."""
    return _coverage(settings, start, end, data_token(settings))[1]


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _missing_players(settings: Settings, day: dt.date, fingerprint: str) -> pd.DataFrame:
    return coverage.missing_players(warehouse(settings), settings, day)


def missing_players(settings: Settings, day: dt.date) -> pd.DataFrame:
    """Players of a date lacking an MLFS row or a prediction, with the reason."""
    return _missing_players(settings, day, data_token(settings))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _stale_counts(settings: Settings, start: dt.date, end: dt.date, fingerprint: str) -> pd.DataFrame:
    return stale.stale_counts(warehouse(settings), settings, start, end)


def stale_counts(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Stale rows per date, table and category (only non-zero counts)."""
    return _stale_counts(settings, start, end, data_token(settings))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _write_refusal(settings: Settings, fingerprint: str) -> str | None:
    try:
        check_before_writing(warehouse(settings))
    except BadInput as exc:
        return str(exc)
    return None


def write_refusal(settings: Settings) -> str | None:
    """Why a backfill or a stale-row deletion would be refused before any write (the preflight every
    write asks: the pipeline may write here, every stage table has its columns), or None. A busy
    warehouse is no answer: None, and the worker asks again before it writes."""
    try:
        return _write_refusal(settings, data_token(settings))
    except Exception as exc:
        if is_transient(exc):
            return None
        raise


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _refresh_cost(settings: Settings, fingerprint: str) -> str | None:
    bounds = coverage.data_bounds(warehouse(settings))
    if bounds is None:
        return None
    note = cost.estimate_note(lambda: cost.coverage_estimate(warehouse(settings), settings, *bounds))
    return None if note is None else note.text


def refresh_cost(settings: Settings) -> str | None:
    """What a full coverage measurement would process, where the warehouse can tell (BigQuery)."""
    return _refresh_cost(settings, data_token(settings))
