"""Cached access to the backend: the warehouse adapter as a resource, query results as data.

Cache keys are the settings (a frozen dataclass, hashed by value) and plain dates, never the
adapter, so two warehouses or two sets of thresholds never share results. Results are reused for
``settings.cache_ttl_s`` seconds: the current time period is part of the key (Streamlit's own ``ttl``
is fixed when the module is imported, before the settings are read); the decorator's ``ttl`` only
frees memory.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

import pandas as pd
import streamlit as st

from backfill import cost, coverage, stale
from backfill.config import Settings, load_settings
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.demo import ensure_demo
from backfill.warehouse import Warehouse, connect

MEMORY_TTL = dt.timedelta(hours=1)
"""How long an unused result stays in memory; a ``cache_ttl_s`` above this is capped by it."""

MAX_ENTRIES = 128
"""Cached results per function (a few date ranges times a few periods is plenty)."""


def settings() -> Settings:
    """The settings in force, read on every run (cheap), so a changed environment takes effect."""
    return load_settings()


@st.cache_resource(show_spinner="Opening the warehouse (on first start this builds the demo data)…")
def warehouse(settings: Settings) -> Warehouse:
    """The warehouse adapter of these settings; builds the demo file when it is missing (SPEC 4.8)."""
    ensure_demo(settings)
    return connect(settings)


def cache_period(settings: Settings, now: Callable[[], float] = time.time) -> int:
    """Number of the current ``cache_ttl_s``-long period: results of an older period are not reused."""
    return int(now() // max(settings.cache_ttl_s, 1))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _data_bounds(settings: Settings, period: int) -> tuple[dt.date, dt.date] | None:
    return coverage.data_bounds(warehouse(settings))


def data_bounds(settings: Settings) -> tuple[dt.date, dt.date] | None:
    """First and last game date in the warehouse, or None when it holds no games."""
    return _data_bounds(settings, cache_period(settings))


@st.cache_resource(show_spinner=False)
def snapshot(settings: Settings) -> CoverageSnapshot:
    """Coverage kept between reruns and sessions; each refresh re-measures only changed dates."""
    return CoverageSnapshot(warehouse(settings), settings)


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _coverage(
    settings: Settings, start: dt.date, end: dt.date, period: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    return snapshot(settings).coverage(start, end)


def daily_coverage(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per (date, stage) of the range: counts, coverage and status."""
    return _coverage(settings, start, end, cache_period(settings))[0]


def monthly_coverage(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """One row per (month, stage): the team's player coverage beside player-game figures."""
    return _coverage(settings, start, end, cache_period(settings))[1]


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _missing_players(settings: Settings, day: dt.date, period: int) -> pd.DataFrame:
    return coverage.missing_players(warehouse(settings), settings, day)


def missing_players(settings: Settings, day: dt.date) -> pd.DataFrame:
    """Players of a date lacking an MLFS row or a prediction, with the reason."""
    return _missing_players(settings, day, cache_period(settings))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _stale_counts(settings: Settings, start: dt.date, end: dt.date, period: int) -> pd.DataFrame:
    return stale.stale_counts(warehouse(settings), settings, start, end)


def stale_counts(settings: Settings, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Stale rows per date, table and category (only non-zero counts)."""
    return _stale_counts(settings, start, end, cache_period(settings))


@st.cache_data(ttl=MEMORY_TTL, max_entries=MAX_ENTRIES, show_spinner=False)
def _refresh_cost(settings: Settings, period: int) -> str | None:
    bounds = coverage.data_bounds(warehouse(settings))
    if bounds is None:
        return None
    note = cost.estimate_note(lambda: cost.coverage_estimate(warehouse(settings), settings, *bounds))
    return None if note is None else note.text


def refresh_cost(settings: Settings) -> str | None:
    """What a full coverage measurement would process, where the warehouse can tell (BigQuery)."""
    return _refresh_cost(settings, cache_period(settings))
