"""The frame shared by every page: opening the warehouse, the sidebar, and the data range."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.warehouse import Warehouse
from ui import auth, data


def open_console() -> tuple[Settings, Warehouse]:
    """Settings and warehouse, or a one-line error and the end of this run when they are unusable.

    Pages call it too, not only app.py: with a ``pages/`` folder beside app.py, Streamlit 1.67 runs
    a page script directly (legacy multipage mode, app.py skipped) when the first request a fresh
    server gets is a deep link such as ``/coverage?date=...``.
    """
    try:
        settings = data.settings()
        return settings, data.warehouse(settings)
    except (BackfillError, OSError) as exc:
        st.error(f"Cannot start the console: {exc}")
        st.stop()


def render_sidebar(settings: Settings, warehouse: Warehouse) -> None:
    """Which warehouse, the thresholds in force, who may act, and a way to drop cached results."""
    with st.sidebar:
        st.markdown("**Warehouse**")
        st.caption(warehouse.describe())
        st.markdown("**Thresholds**")
        st.caption(
            f"OK at {settings.ok_pct:g}% expected coverage or more  \n"
            f"MLFS gate before predictions: {settings.min_mlfs_coverage_pct:g}%  \n"
            f"Bootstrap: fewer than {settings.min_history_games} earlier games"
        )
        st.button(
            "Refresh data",
            key="sidebar_refresh",
            icon=":material/refresh:",
            on_click=st.cache_data.clear,
            help=f"Results are reused for {settings.cache_ttl_s} s; this reads the warehouse again now.",
        )
        st.markdown("**Who**")
        auth.render_identity(auth.current_identity(settings))


def require_data_range(settings: Settings) -> tuple[dt.date, dt.date]:
    """First and last game date, or a note and the end of this run when the warehouse is empty."""
    bounds = data.data_bounds(settings)
    if bounds is None:
        st.info("The warehouse holds no player_game_summary rows yet, so there is nothing to measure.")
        st.stop()
    return bounds
