"""Who is using the console, and may they act (SPEC 4.9).

Viewing is open to everyone. Launching, rerunning, resuming and cancelling backfills and deleting
stale rows are for operators (``settings.operators``). Four situations:

- no operator list: single-user local mode; whoever runs the console acts as the OS user
  (:func:`backfill.access.local_user`), as the CLI does;
- signed in with Streamlit authentication (``[auth]`` in ``.streamlit/secrets.toml``, ``st.login``):
  the user's email is who acts, and may act if it is on the operator list;
- authentication configured but not signed in: viewing only, with a "Log in" button;
- an operator list without authentication: viewing only, since the console cannot know who is
  at the browser (the server's OS user is not the visitor).

The pages only decide what to enable; the backend refuses an action to anyone but an operator
whatever the page shows (``require_operator`` in :mod:`backfill.launch`), and records who acted.

Identity source: ``st.user``. Streamlit adds ``is_logged_in`` to it exactly when ``[auth]`` is
configured, so that key tells whether sign-in is available. Tests inject an identity at that
boundary with Streamlit's own ``AppTest.user`` (for example ``{"is_logged_in": True, "email": ...}``),
since AppTest cannot go through an OIDC provider; there is no environment-variable backdoor that
a deployed console would honour. :func:`identify` is pure and takes the user mapping.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAuthError

from backfill.access import is_operator, local_user
from backfill.config import Settings


@dataclass(frozen=True)
class Identity:
    """Who is at the console and whether the operator controls are enabled for them."""

    who: str | None
    """Recorded in the ledger as who acted; None when nobody can be named (the backend refuses)."""
    may_act: bool
    summary: str
    """One line for the sidebar: who, and in which mode."""
    reason: str | None = None
    """One line saying why the operator controls are disabled (None when they are not)."""
    signed_in: bool = False
    can_log_in: bool = False


def identify(user: Mapping[str, Any], settings: Settings, local: Callable[[], str] = local_user) -> Identity:
    """The identity of a session from its ``st.user`` mapping and the operator list."""
    operators = ", ".join(settings.operators)
    auth_configured = "is_logged_in" in user
    email = user.get("email") if user.get("is_logged_in") else None
    if email:
        if not settings.operators:
            return Identity(
                email,
                True,
                f"Signed in as {email}. No operator list is configured, so everyone signed in may act.",
                signed_in=True,
            )
        if is_operator(settings, email):
            return Identity(email, True, f"Signed in as {email} (operator).", signed_in=True)
        return Identity(
            email,
            False,
            f"Signed in as {email} (viewer). Operators: {operators}.",
            reason=f"{email} is not an operator, so launching, rerunning and cancelling are disabled "
            f"(operators: {operators}).",
            signed_in=True,
        )
    if not settings.operators:
        who = local()
        return Identity(
            who,
            True,
            f"Single-user local mode: no operator list is configured, so you act as {who}.",
            can_log_in=auth_configured,
        )
    if auth_configured:
        return Identity(
            None,
            False,
            f"Not signed in: viewing only. Operators: {operators}.",
            reason="Log in to launch, rerun or cancel backfills; only operators may.",
            can_log_in=True,
        )
    return Identity(
        None,
        False,
        f"Viewing only: operators are configured ({operators}) but sign-in is not.",
        reason="Operators are configured but sign-in is not ([auth] in .streamlit/secrets.toml), "
        "so the console cannot tell who you are: viewing only.",
    )


def current_identity(settings: Settings) -> Identity:
    """The identity of this session (from ``st.user``)."""
    return identify(st.user.to_dict(), settings)


def render_identity(identity: Identity) -> None:
    """The sidebar's who-am-I line, with a "Log in" or "Log out" button where they apply."""
    st.caption(identity.summary)
    if identity.can_log_in and st.button("Log in", key="sidebar_log_in", icon=":material/login:"):
        try:
            st.login()
        except StreamlitAuthError as exc:  # Authlib missing, or an incomplete [auth] section
            st.error(f"Cannot start sign-in: {str(exc).splitlines()[0]}")
    if identity.signed_in and st.button("Log out", key="sidebar_log_out", icon=":material/logout:"):
        st.logout()


def explain(identity: Identity) -> None:
    """A one-line note above operator controls when they are disabled for this user."""
    if not identity.may_act:
        st.info(identity.reason, icon=":material/lock:")
