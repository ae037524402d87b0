"""Following a backfill run on a page: live progress read from the ledger, and the operator actions.

Runs execute in their own worker process (:func:`backfill.launch.submit`); the page only reads the
ledger. :func:`follow` draws a run inside an ``st.fragment`` that reruns every ``POLL_S`` seconds
while the run is queued or running, so only that part of the page refreshes and nothing touches
the warehouse meanwhile (on DuckDB a read would contend for the file the worker writes). When a run
this session saw active ends, the cached query results are dropped so every page shows fresh
figures, and the whole page is drawn again (its buttons follow the final status; polling stops).
The sidebar's badge of active runs, on every page, does the same for a run launched from a page
that does not follow it (the Coverage drill-down's "Rerun with upstream").
"""

from __future__ import annotations

from collections.abc import Callable

import streamlit as st

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.launch import cancel
from backfill.ledger import RUN_ACTIVE, Ledger, Run
from ui import data, runs, waiting
from ui.auth import Identity

POLL_S = 1.5
"""Seconds between two reads of a running run's progress (SPEC 4.4: visible within 2 seconds)."""

SEEN_ACTIVE_KEY = "runs_seen_active"
"""Session-state key of the runs this session saw queued or running (shared by Backfill and Runs)."""

LOG_LINES = 12
"""Log lines shown under a run's progress; the Runs page shows more on request."""


def watch(run_id: str) -> None:
    """Remember that this session saw a run active, so its end refreshes the cached figures."""
    st.session_state.setdefault(SEEN_ACTIVE_KEY, set()).add(run_id)


def follow(ledger: Ledger, run_id: str, draw: Callable[[Run], None], *, key: str) -> None:
    """Draw a run now and, while it is queued or running, every ``POLL_S`` seconds again."""
    active = ledger.get_run(run_id).status in RUN_ACTIVE

    @st.fragment(run_every=POLL_S if active else None, key=key)
    @waiting.in_one_line
    def live() -> None:
        ledger.detect_interrupted()
        run = ledger.get_run(run_id)
        seen = st.session_state.setdefault(SEEN_ACTIVE_KEY, set())
        if run.status in RUN_ACTIVE:
            seen.add(run_id)
        elif run_id in seen:
            seen.discard(run_id)
            data.refresh()  # the warehouse changed: Coverage and Overview read it again
            st.rerun(scope="app")
        draw(run)

    live()


def status_line(run: Run) -> None:
    """The run's status as a badge, with its outcome or what it is doing."""
    note = run.message or ""
    if run.status in RUN_ACTIVE:
        note = (
            "cancel requested: it stops before its next batch"
            if run.cancel_requested
            else (
                "waiting for its worker process" if run.status == "queued" else "running in its own process"
            )
        )
    badge_col, note_col = st.columns([1, 7], vertical_alignment="center")
    with badge_col:
        st.badge(run.status, color=runs.RUN_BADGE_COLORS.get(run.status, "gray"))
    note_col.caption(note)


def progress(ledger: Ledger, run: Run, labels: runs.Labels = None) -> list[dict]:
    """Progress bar and status grid of a run; returns its items for callers that show more."""
    items = ledger.items(run.run_id)
    counts = ledger.item_counts(run.run_id)
    done, total = runs.finished(counts)
    st.progress(done / total if total else 1.0, text=runs.progress_text(counts))
    if items:
        with st.container(width=runs.grid_box_width(items)):
            st.altair_chart(runs.status_grid(items, labels), width="stretch", key=f"run_grid_{run.run_id}")
        with st.container(width=runs.KEY_BOX_PX):
            st.altair_chart(runs.status_key(), width="stretch", key=f"run_grid_key_{run.run_id}")
    return items


def log(ledger: Ledger, run: Run, lines: int = LOG_LINES) -> None:
    """The latest log lines of a run."""
    events = ledger.events(run.run_id, lines)
    if events:
        st.code(runs.log_text(events), language=None, wrap_lines=True)
    else:
        st.caption("No log lines yet.")


def notify(key: str, kind: str, text: str) -> None:
    """Keep a one-line outcome of an action for the next run of the page."""
    st.session_state[key] = (kind, text)


def show_notice(key: str) -> None:
    """Show (once) the outcome an action left under ``key``."""
    notice = st.session_state.pop(key, None)
    if notice:
        kind, text = notice
        {"success": st.success, "error": st.error, "info": st.info}[kind](text)


def cancel_run(settings: Settings, run_id: str, who: str | None, notice_key: str) -> None:
    """Button callback: ask a run to stop before its next batch (the backend checks the operator)."""
    try:
        cancel(settings, run_id, who)
    except BackfillError as exc:
        notify(notice_key, "error", f"Not cancelled: {exc}")
        return
    notify(notice_key, "info", f"Asked run {run_id} to stop before its next batch.")


def cancel_button(settings: Settings, run: Run, identity: Identity, *, key: str, notice_key: str) -> None:
    """ "Cancel" for a queued or running run; operators only (the backend refuses others too)."""
    st.button(
        "Cancel run",
        key=key,
        icon=":material/stop_circle:",
        disabled=not identity.may_act or run.status not in RUN_ACTIVE or run.cancel_requested,
        help=identity.reason
        if not identity.may_act
        else (
            "Cancel requested already: the run stops before its next batch."
            if run.cancel_requested
            else "Stops the run before its next batch of dates."
        ),
        on_click=cancel_run,
        args=(settings, run.run_id, identity.who, notice_key),
    )


ACTIVE_POLL_S = 3.0
"""Seconds between two reads of the sidebar's active runs (the ledger only, never the warehouse)."""


def active_runs(settings: Settings, warehouse_url: str) -> None:
    """The sidebar's badge: runs queued or running on this warehouse, who started them, how far."""

    @st.fragment(run_every=ACTIVE_POLL_S)
    @waiting.in_one_line
    def badge() -> None:
        live = Ledger(settings.ledger).active_runs_on(warehouse_url)
        seen = st.session_state.setdefault(SEEN_ACTIVE_KEY, set())
        ended = seen - {run.run_id for run in live}
        if ended:  # a run this session launched ended, whatever page is open: its figures are read again
            seen -= ended
            data.refresh()
            st.rerun(scope="app")
        if not live:
            st.caption("No backfill running.")
            return
        st.badge(
            f"{len(live)} active run{'s' if len(live) != 1 else ''}", icon=":material/sync:", color="blue"
        )
        ledger = Ledger(settings.ledger)
        for run in live:
            done, total = runs.finished(ledger.item_counts(run.run_id))
            st.page_link(
                "pages/backfill.py",
                label=f"{run.created_by}: {done}/{total} {run.status}",
                icon=":material/play_circle:",
                query_params={"run": run.run_id},
                help=f"Run {run.run_id}, started by {run.created_by}: {done} of {total} work items finished.",
            )

    badge()
