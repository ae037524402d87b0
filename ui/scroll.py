"""Deep links land on their target: the page scrolls to the heading a link points at.

Streamlit draws a page top to bottom and opens it at the top, so ``/coverage?date=...`` showed the
calendars and left the drill-down below the fold. A zero-height component (its script runs in an
iframe of the same origin) scrolls the parent page to the heading's anchor once it is drawn, and
keeps it there while the charts above settle their heights.
"""

from __future__ import annotations

import json

import streamlit as st
import streamlit.components.v1 as components

SETTLE_MS = 1500
"""How long the target is kept in view after it appears (charts above it may still grow)."""

GIVE_UP_MS = 10000
"""How long to wait for the target to be drawn at all."""

SCROLLED_KEY = "console_scrolled_to"
"""Session key of the links already followed, so a rerun does not pull the reader back."""


def scroll_once(anchor: str, link: str) -> None:
    """Scroll to the heading whose anchor is ``anchor``, once per ``link`` in this session."""
    done = st.session_state.setdefault(SCROLLED_KEY, set())
    if link in done:
        return
    done.add(link)
    components.html(
        f"""<script>
const doc = window.parent.document;
const started = Date.now();
let seenAt = null;
const timer = setInterval(() => {{
  const target = doc.getElementById({json.dumps(anchor)});
  if (target) {{
    target.scrollIntoView({{block: "start"}});
    seenAt = seenAt || Date.now();
    if (Date.now() - seenAt > {SETTLE_MS}) clearInterval(timer);
  }} else if (Date.now() - started > {GIVE_UP_MS}) {{
    clearInterval(timer);
  }}
}}, 100);
</script>""",
        height=0,
    )
