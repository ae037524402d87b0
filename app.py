"""The operations console: navigation and the shared sidebar; each page is a file under pages/."""

import streamlit as st

from ui import data, waiting
from ui.shell import enter_from_app, follow_pending_link, open_console, render_sidebar

st.set_page_config(layout="wide", page_title="Prediction coverage console", page_icon=":material/monitoring:")

PAGES = [
    st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("pages/coverage.py", title="Coverage", icon=":material/calendar_month:"),
    st.Page("pages/gaps.py", title="Gaps & stale rows", icon=":material/rule:"),
    st.Page("pages/backfill.py", title="Backfill", icon=":material/play_circle:"),
    st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    st.Page("pages/history.py", title="History", icon=":material/monitor_heart:"),
]  # in menu order; a new page is one more entry here

page = st.navigation(PAGES)
enter_from_app()
follow_pending_link()
with waiting.guard():  # a warehouse or ledger error is one line (busy: waited out), never a traceback
    settings, warehouse = open_console()
    with waiting.watching(settings):
        data.begin_rerun(settings)  # every figure of this rerun is of this one fingerprint
    try:
        page.run()
    finally:  # after the page: its title and figures are not kept waiting by the sidebar's reads
        render_sidebar(settings, warehouse)
