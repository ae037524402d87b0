"""Every page runs through app.py, even when Streamlit runs its file alone.

With a ``pages/`` folder beside app.py, Streamlit (1.67) runs a fresh server's first request in its
legacy multipage mode: a deep link such as ``/runs?run=ID`` runs ``pages/runs.py`` alone, without
app.py's navigation, title and sidebar (AppTest does so on every run). Each page calls
:func:`through_app` before it imports anything else: in that mode it leaves it for good and runs
app.py in its place, in the same script run, so the widgets' values of this run (a click) and the
query parameters are all there; app.py then runs this page, and the outer run stops.
"""

import runpy
from pathlib import Path

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

APP = Path(__file__).resolve().parent.parent / "app.py"


def through_app() -> None:
    """Run app.py in place of this page if Streamlit ran the page alone (its legacy ``pages/`` mode)."""
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False  # app.py's st.navigation clears it too, for good
        runpy.run_path(str(APP))
        st.stop()
