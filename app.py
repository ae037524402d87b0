"""The operations console: navigation and the shared sidebar; each page is a file under pages/.

A page file's first line reruns through this script should Streamlit run the file alone (a fresh
server's first request, in its legacy ``pages/`` mode): see ``ui/entry.py``.
"""

import streamlit as st

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
# The first paint: the page's title before the console's modules load (pandas, DuckDB and SQLAlchemy
# take about a second on a fresh server's first run) and before the warehouse is read.
st.title(page.title)

from backfill.cost_labels import job_labels  # noqa: E402
from ui import data, waiting  # noqa: E402  (after the title, see above)
from ui.auth import current_identity  # noqa: E402
from ui.shell import open_console, render_sidebar  # noqa: E402

with waiting.guard():  # a warehouse or ledger error is one line (busy: waited out), never a traceback
    settings, warehouse = open_console()
    with waiting.watching(settings):
        data.begin_rerun(settings)  # every figure of this rerun is of this one fingerprint
    # The sidebar's place comes first, its contents after the page, so that the page's first figure
    # waits for nothing else (issue 23); in ``finally``, so a page that ends early with st.stop() (no
    # runs yet, an empty warehouse) still gets it.
    sidebar = st.sidebar.container()
    # Every job of this script run says it is a page view and who looked (BigQuery job labels: the
    # bill split by action and by user, the user as a hash).
    with warehouse.labels(**job_labels("page", current_identity(settings).who)):
        try:
            page.run()
        finally:
            render_sidebar(settings, warehouse, sidebar)
