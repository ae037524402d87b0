"""Who may act: viewing is open; backfills, reruns, cancels and stale-row deletion are for operators.

With an operators list configured, the backend refuses those actions to anyone else, whatever the
caller's UI shows. With none configured, the console runs in single-user local mode and whoever
runs it is the operator. A caller that cannot be named (``who`` is None) never acts: that is how
the console says "nobody here may act" (for example signed in, but no operators list). Every
action is recorded in the ledger with who did it.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from typing import Any

from backfill.config import Settings
from backfill.errors import BackfillError


class NotAllowed(BackfillError):
    """The user is not an operator."""


def local_user() -> str:
    """Who is acting from a shell: ``BACKFILL_USER``, else the login name."""
    try:
        return os.environ.get("BACKFILL_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown"


def signed_in_name(settings: Settings, claims: Mapping[str, Any]) -> str | None:
    """The name a signed-in user acts under: their ``operator_claim`` (e-mail or subject), or None
    when the provider gave none, or says the e-mail address is not verified."""
    name = claims.get(settings.operator_claim)
    if not isinstance(name, str) or not name.strip():
        return None
    # Providers that let users type any address (some Microsoft and Okta setups) say so here;
    # an unverified address must not pass for an operator's.
    if settings.operator_claim == "email" and claims.get("email_verified") is False:
        return None
    return name.strip()


def is_operator(settings: Settings, who: str | None) -> bool:
    """Whether ``who`` may launch, rerun, cancel and delete (anyone named, in single-user mode)."""
    if who is None:
        return False
    if not settings.operators:
        return True
    return who.lower() in {operator.lower() for operator in settings.operators}


def require_operator(settings: Settings, who: str | None, action: str) -> None:
    """Refuse an operator action to anyone else, with a one-line reason."""
    if is_operator(settings, who):
        return
    if not settings.operators:
        raise NotAllowed(f"an anonymous user may not {action}: no operators are configured")
    raise NotAllowed(
        f"{who or 'an anonymous user'} may not {action}: only operators may ({', '.join(settings.operators)})"
    )
