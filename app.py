"""The operations console: navigation and the shared sidebar; each page is a file under views/.

The folder is not named ``pages/``: with that name Streamlit runs a deep link's file alone, without
this script, on a fresh server's first request (its legacy multipage mode), and the page had to hand
over to this script and back, three script runs before the first content.
"""

import streamlit as st

st.set_page_config(layout="wide", page_title="Prediction coverage console", page_icon=":material/monitoring:")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
    st.Page("views/coverage.py", title="Coverage", icon=":material/calendar_month:"),
    st.Page("views/gaps.py", title="Gaps & stale rows", icon=":material/rule:"),
    st.Page("views/backfill.py", title="Backfill", icon=":material/play_circle:"),
    st.Page("views/runs.py", title="Runs", icon=":material/history:"),
    st.Page("views/history.py", title="History", icon=":material/monitor_heart:"),
]  # in menu order; a new page is one more entry here

page = st.navigation(PAGES)
# The first paint: the page's title before the console's modules load (pandas, DuckDB and SQLAlchemy
# take about a second on a fresh server's first run) and before the warehouse is read.
st.title(page.title)

from ui import data, waiting  # noqa: E402  (after the title, see above)
from ui.shell import open_console, render_sidebar  # noqa: E402

with waiting.guard():  # a warehouse or ledger error is one line (busy: waited out), never a traceback
    settings, warehouse = open_console()
    with waiting.watching(settings):
        data.begin_rerun(settings)  # every figure of this rerun is of this one fingerprint
    # Before the page (one read of the ledger): a page that ends early with st.stop() (no runs yet,
    # an empty warehouse) would leave it undrawn, as nothing is drawn after st.stop().
    render_sidebar(settings, warehouse)
    page.run()
