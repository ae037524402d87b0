"""Form and filter state kept in the URL: a reload, a bookmark or a shared link opens the page as it
was left (``?seasons=2021&stages=predictions``).

:func:`restore` runs before a widget and fills its session value from the URL, once per session and
only with values the widget offers; :func:`keep` runs after it and writes the value back (or drops
the parameter when the widget is empty), so the URL always says what the page shows.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import streamlit as st

from backfill.errors import BadInput


def restore(
    key: str,
    param: str,
    options: Collection[Any] | None = None,
    parse: Callable[[str], Any] = str,
    many: bool = False,
    whole: bool = False,
) -> None:
    """Before the widget ``key``: its value from ``?param=`` (comma-separated for ``many``; taken
    whole, commas and all, for a text box with ``whole``), when this session has none yet; values
    that do not parse or are not among ``options`` are left out."""
    if key in st.session_state or param not in st.query_params:
        return
    if whole:
        st.session_state[key] = str(st.query_params[param])[:2000]
        return
    values = []
    for raw in str(st.query_params[param]).split(","):
        try:
            value = parse(raw.strip())
        except (ValueError, BadInput):
            continue
        if raw.strip() and (options is None or value in options):
            values.append(value)
    if many:
        st.session_state[key] = values
    elif values:
        st.session_state[key] = values[0]


def keep(param: str, value: Any, text: Callable[[Any], str] = str) -> None:
    """After the widget: its value in the URL as ``?param=``, or no such parameter when it is empty."""
    if value is None or value == "" or (isinstance(value, (list, tuple)) and not value):
        st.query_params.pop(param, None)
    elif isinstance(value, (list, tuple)):
        st.query_params[param] = ",".join(text(item) for item in value)
    else:
        st.query_params[param] = text(value)
