"""Never a traceback: a busy warehouse is waited out, any other store error is one line.

app.py runs every page inside :func:`guard`. The sidebar's freshness fragment re-reads the
warehouse's fingerprint every few seconds and reruns the app when it moved, or when a busy
warehouse is free again, so a page waiting for the warehouse fills in by itself.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
from collections.abc import Callable, Iterator
from dataclasses import replace

import streamlit as st

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.outage import Outage, outage_of
from ui import data

log = logging.getLogger(__name__)

POLL_WAITING_S = 2.0
"""How often a page waiting for the warehouse tries again."""

POLL_FRESH_S = 15.0
"""How often the sidebar looks whether another process changed the warehouse (less often where the
warehouse says looking costs: ``Warehouse.CHANGE_POLL_S``, a minute on BigQuery)."""

FULL_RUN_KEY = "console_full_run"
"""Session key set by app.py: the freshness fragment's next run is part of a full rerun."""


def clock_text(moment: dt.datetime) -> str:
    """A UTC moment as the console shows times of day (HH:MM:SS UTC)."""
    return f"{moment.astimezone(dt.UTC):%H:%M:%S} UTC"


def show(outage: Outage, reading: data.Reading | None = None) -> None:
    """The outage as one line (waiting: with a spinner and the age of the figures shown)."""
    if outage.waiting:
        shown = f" Showing data as of {clock_text(reading.as_of)}." if reading is not None else ""
        # Not ``with``: leaving the block would mark the status complete; it is running until the wait ends.
        box = st.status(outage.what, state="running", expanded=False)
        box.caption(outage.todo)
        if shown:
            st.caption(shown.strip())
    else:
        st.error(outage.text, icon=":material/error:")


def _missing_table() -> str | None:
    """The CLI's words when a stage's table is missing (``stage grading: table ... does not exist in
    ...; create it (...)``), asked only after a read failed: one metadata lookup per stage."""
    try:
        data.warehouse(data.settings()).check_stage_tables()
    except BadInput as missing:
        return str(missing)
    except Exception:  # noqa: BLE001 - no better explanation: the engine's own line is shown
        return None
    return None


def explained(outage: Outage) -> Outage:
    """A failed read explained as the CLI explains it when a stage's table is missing."""
    if outage.waiting:
        return outage
    missing = _missing_table()
    if missing is None:
        return outage
    return Outage(False, f"Cannot read the data: {missing}.", "Then press Refresh data.")


def in_one_line(draw: Callable[..., None]) -> Callable[..., None]:
    """For a fragment's body: Streamlit shows a fragment's exception as a traceback inside it, so a
    warehouse or ledger error there becomes the same one line as on a page."""

    @functools.wraps(draw)
    def drawn(*args, **kwargs) -> None:
        try:
            draw(*args, **kwargs)
        except Exception as exc:
            outage = outage_of(exc)
            if outage is None:
                raise
            st.caption(
                f":material/error: {outage.what}"
                if not outage.waiting
                else f":material/hourglass_top: {outage.what}"
            )

    return drawn


@contextlib.contextmanager
def guard() -> Iterator[None]:
    """Run a page; a warehouse or ledger error becomes one line at the top of the page instead of a
    traceback (errors of the program itself still propagate)."""
    top = st.empty()
    try:
        yield
    except Exception as exc:
        outage = outage_of(exc)
        if outage is None:
            raise
        log.warning("page stopped on %s: %s", type(exc).__name__, exc)
        with top.container():
            show(explained(outage), st.session_state.get(data.READING_KEY))


def show_if_waiting() -> None:
    """The waiting state, when this rerun's figures are the last good ones of a busy warehouse."""
    current = st.session_state.get(data.READING_KEY)
    if current is not None and current.waiting is not None:
        outage = outage_of(current.waiting)
        if outage is not None:
            show(outage, current)


@contextlib.contextmanager
def watching(settings: Settings) -> Iterator[None]:
    """Read this rerun's fingerprint inside the block; whatever happens, draw the freshness line."""
    st.session_state[FULL_RUN_KEY] = True
    try:
        yield
        show_if_waiting()
    finally:
        current = st.session_state.get(data.READING_KEY)
        fresh_every = max(POLL_FRESH_S, data.warehouse(settings).CHANGE_POLL_S)
        every = POLL_WAITING_S if current is None or current.waiting is not None else fresh_every
        with st.sidebar:
            st.fragment(run_every=every)(_freshness)(settings)


def _freshness(settings: Settings) -> None:
    shown: data.Reading | None = st.session_state.get(data.READING_KEY)
    if not st.session_state.pop(FULL_RUN_KEY, False):
        try:
            now = data.read_fingerprint(settings)
        except Exception as exc:
            if outage_of(exc) is None:
                raise
            now = None
        if now is not None and now.waiting is None:
            if shown is None or shown.waiting is not None or now.fingerprint != shown.fingerprint:
                st.rerun()  # new figures, or the warehouse is free again: the whole page reads them
            shown = replace(shown, as_of=now.as_of)
            st.session_state[data.READING_KEY] = shown
    if shown is None:
        st.caption(":material/hourglass_top: Waiting for the warehouse…")
    elif shown.waiting is not None:
        # The page above says it waits (one notice); here only the time of the figures shown.
        st.caption(f":material/hourglass_top: Data as of {clock_text(shown.as_of)}; the warehouse is busy")
    else:
        st.caption(
            f"Data as of {clock_text(shown.as_of)}",
            help="When the warehouse was last read; the page reads it again when another process changes it.",
        )
