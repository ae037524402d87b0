"""The frame shared by every page: opening the warehouse, the sidebar, and the data range."""

from __future__ import annotations

import datetime as dt

import streamlit as st

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.warehouse import Warehouse
from ui import auth, data, run_view
from ui.stages import title


def open_console() -> tuple[Settings, Warehouse]:
    """Settings and warehouse, or a one-line error and the end of this run when they are unusable."""
    try:
        settings = data.settings()
        warehouse = data.warehouse(settings)
    except (BackfillError, OSError) as exc:
        st.error(f"Cannot start the console: {exc}")
        st.stop()
    return settings, warehouse


def render_sidebar(settings: Settings, warehouse: Warehouse, where=None) -> None:
    """Which warehouse, the thresholds in force, who may act, and a way to drop cached results
    (in ``where``, a container kept for it in the sidebar; the sidebar itself by default)."""
    with where if where is not None else st.sidebar:
        st.markdown("**Runs**")
        run_view.active_runs(settings, warehouse.url)
        st.markdown("**Warehouse**")
        st.caption(warehouse.describe())
        st.markdown("**Thresholds**")
        pipeline = settings.pipeline
        gates = [
            f"{title(pipeline.upstream(stage).label)} gate before {stage.label}: {stage.gate_min_upstream_pct:g}%"
            for stage in pipeline.backfillable
            if stage.gated
        ]
        bootstrap = sorted({stage.bootstrap_min_history for stage in pipeline.backfillable} - {0})
        st.caption(
            "  \n".join(
                [
                    f"OK at {settings.ok_pct:g}% expected coverage or more",
                    *gates,
                    *(
                        [f"Bootstrap: fewer than {'/'.join(map(str, bootstrap))} earlier games"]
                        if bootstrap
                        else []
                    ),
                    f"Pipeline: {'built-in demo' if pipeline.path == 'builtin' else pipeline.path}",
                ]
            )
        )
        st.button(
            "Refresh data",
            key="sidebar_refresh",
            icon=":material/refresh:",
            on_click=data.refresh,
            help=f"Results are reused for {settings.cache_ttl_s} s; this reads the warehouse again now.",
        )
        refresh_cost = data.refresh_cost(settings)
        if refresh_cost:
            st.caption(f"{refresh_cost}. A refresh re-measures only the dates that changed.")
        st.markdown("**Who**")
        auth.render_identity(auth.current_identity(settings))


def require_data_range(settings: Settings) -> tuple[dt.date, dt.date]:
    """First and last game date, or a note and the end of this run when the warehouse is empty."""
    bounds = data.data_bounds(settings)
    if bounds is None:
        st.info("The warehouse holds no player_game_summary rows yet, so there is nothing to measure.")
        st.stop()
    return bounds
