"""Who is using the console, and may they act (SPEC 4.9).

Viewing is open to everyone. Launching, rerunning, resuming and cancelling backfills and deleting
stale rows are for operators (``settings.operators``). The situations:

- no sign-in and no operator list: single-user local mode; whoever runs the console acts as the
  OS user (:func:`backfill.access.local_user`), as the CLI does;
- sign-in configured (``[auth]`` in ``.streamlit/secrets.toml``, ``st.login``) and an operator
  list: a signed-in user acts under their ``operator_claim`` (e-mail by default, or the provider's
  subject) and may act if it is on the list; not signed in: viewing only, with a "Log in" button;
- sign-in configured and no operator list: nobody acts from the console, signed in or not (the
  server's OS user is not the visitor); the page says to list operators;
- an operator list without sign-in: viewing only, since the console cannot know who is at the
  browser.

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

from backfill.access import is_operator, local_user, signed_in_name
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
    if "is_logged_in" not in user:  # no [auth] section: nobody can sign in
        if not settings.operators:
            who = local()
            return Identity(
                who, True, f"Single-user local mode: no operator list is configured, so you act as {who}."
            )
        return Identity(
            None,
            False,
            f"Viewing only: operators are configured ({operators}) but sign-in is not.",
            reason="Operators are configured but sign-in is not ([auth] in .streamlit/secrets.toml), "
            "so the console cannot tell who you are: viewing only.",
        )
    signed_in = bool(user.get("is_logged_in"))
    name = signed_in_name(settings, user) if signed_in else None
    shown = name or user.get("email") or user.get("sub") or "a user the provider did not name"
    if not settings.operators:
        # Sign-in without a list: the server's own user is not the visitor, and being signed in
        # proves nothing about who should act, so nobody acts (the backend refuses who=None).
        return Identity(
            None,
            False,
            (f"Signed in as {shown}." if signed_in else "Not signed in.")
            + " Viewing only: no operators are listed (set BACKFILL_OPERATORS).",
            reason="Sign-in is configured but no operators are listed, so nobody may act: list them in "
            f"the operators setting (BACKFILL_OPERATORS), by {settings.operator_claim}.",
            signed_in=signed_in,
            can_log_in=not signed_in,
        )
    if not signed_in:
        return Identity(
            None,
            False,
            f"Not signed in: viewing only. Operators: {operators}.",
            reason="Log in to launch, rerun or cancel backfills; only operators may.",
            can_log_in=True,
        )
    if name is None:
        return Identity(
            None,
            False,
            f"Signed in as {shown} (viewer). Operators: {operators}.",
            reason=f"The sign-in provider gave no verified {settings.operator_claim} for you, "
            "so launching, rerunning and cancelling are disabled.",
            signed_in=True,
        )
    if is_operator(settings, name):
        return Identity(name, True, f"Signed in as {name} (operator).", signed_in=True)
    return Identity(
        name,
        False,
        f"Signed in as {name} (viewer). Operators: {operators}.",
        reason=f"{name} is not an operator, so launching, rerunning and cancelling are disabled "
        f"(operators: {operators}).",
        signed_in=True,
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
