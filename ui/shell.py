"""The frame shared by every page: opening the warehouse, the sidebar, and the data range."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import streamlit as st

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.warehouse import Warehouse
from ui import auth, data, run_view, waiting
from ui.stages import title

VIA_APP = "console_via_app"
"""Session key app.py sets on every run, so a page can tell that Streamlit ran it without app.py."""

APP_RAN = "console_app_ran"
"""Session key app.py sets on every run and the page takes: absent, Streamlit ran the page alone."""

PENDING_LINK = "console_pending_link"
"""Session key of a deep link to follow once app.py has declared the navigation."""


def enter_from_app() -> None:
    """Called by app.py before it runs a page: this session has the navigation and the sidebar."""
    st.session_state[VIA_APP] = True
    st.session_state[APP_RAN] = True


def follow_pending_link() -> None:
    """Go on to the page (and query parameters) a deep link asked for before app.py had run."""
    pending = st.session_state.pop(PENDING_LINK, None)
    if pending is not None:
        st.switch_page(pending["page"], query_params=pending["params"])


def open_console(page_file: str | None = None) -> tuple[Settings, Warehouse]:
    """Settings and warehouse, or a one-line error and the end of this run when they are unusable.

    Pages pass their ``__file__``: when the first request a fresh server gets is a deep link such as
    ``/runs?run=ID``, Streamlit 1.67 runs that file directly (its legacy ``pages/`` mode, without
    app.py, so no navigation and no sidebar). The page then hands over to app.py, which declares the
    navigation and comes back to the same page with the same query parameters.
    """
    if page_file is not None and not st.session_state.get(VIA_APP):
        st.session_state[PENDING_LINK] = {
            "page": f"pages/{Path(page_file).name}",
            "params": st.query_params.to_dict(),
        }
        st.switch_page("app.py")
    try:
        settings = data.settings()
        warehouse = data.warehouse(settings)
    except (BackfillError, OSError) as exc:
        st.error(f"Cannot start the console: {exc}")
        st.stop()
    if page_file is not None and not st.session_state.pop(APP_RAN, False):
        # Streamlit ran this page without app.py (AppTest reruns do): read this rerun's moment here.
        read = False
        with waiting.guard():
            data.begin_rerun(settings)
            read = True
            waiting.show_if_waiting()
        if not read:
            st.stop()
    return settings, warehouse


def render_sidebar(settings: Settings, warehouse: Warehouse) -> None:
    """Which warehouse, the thresholds in force, who may act, and a way to drop cached results."""
    with st.sidebar:
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
