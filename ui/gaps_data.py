"""Cached backend reads of the Gaps & stale rows page, keyed like ``ui.data``: settings, dates, fingerprint.

Results are dropped with every other cached result (``ui.data.refresh``) after a deletion or
when the sidebar's refresh is pressed. The runs of a report are read from the ledger on every run
instead: a backfill in another process changes them at any time, and reading them is cheap.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from backfill import report as gap_reports
from backfill import stale
from backfill.config import Settings
from ui import data

PREVIEW_ROWS = 200
"""Stale rows shown per table in the preview."""


@st.cache_data(ttl=data.MEMORY_TTL, max_entries=data.MAX_ENTRIES, show_spinner="Measuring the period…")
def _gap_report(settings: Settings, start: dt.date, end: dt.date, fingerprint: str) -> gap_reports.GapReport:
    return gap_reports.gap_report(data.warehouse(settings), settings, start, end)


def gap_report(settings: Settings, start: dt.date, end: dt.date) -> gap_reports.GapReport:
    """The gap report of a period, without runs: coverage by month, gaps with reasons, stale rows."""
    return _gap_report(settings, start, end, data.data_token(settings))


@st.cache_data(ttl=data.MEMORY_TTL, max_entries=data.MAX_ENTRIES, show_spinner=False)
def _stale_preview(
    settings: Settings, table: str, start: dt.date, end: dt.date, fingerprint: str
) -> pd.DataFrame:
    return stale.stale_preview(data.warehouse(settings), settings, table, start, end, PREVIEW_ROWS)


def stale_preview(settings: Settings, table: str, start: dt.date, end: dt.date) -> pd.DataFrame:
    """Up to :data:`PREVIEW_ROWS` stale rows of one table with their category flags."""
    return _stale_preview(settings, table, start, end, data.data_token(settings))
