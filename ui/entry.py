"""Every page runs through app.py, even as a fresh server's first request.

With a ``pages/`` folder beside app.py, Streamlit (1.67) runs a fresh server's first request in its
legacy multipage mode: a deep link such as ``/runs?run=ID`` runs ``pages/runs.py`` alone, without
app.py's navigation, title and sidebar. Each page calls :func:`through_app` before it imports
anything else: in that mode it leaves it for good (for the whole server) and reruns at once, and the
rerun runs app.py, which runs the same page (pages are known by their URL path in both modes) with
the same query parameters. The detour costs one script run that has imported nothing.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager


def through_app() -> None:
    """Rerun through app.py if Streamlit ran this page alone (its legacy ``pages/`` mode)."""
    if PagesManager.uses_pages_directory:
        # app.py's st.navigation would clear it too, but only once app.py has run.
        PagesManager.uses_pages_directory = False
        st.rerun()
