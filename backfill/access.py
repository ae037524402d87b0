"""Who may act: viewing is open; backfills, reruns, cancels and stale-row deletion are for operators.

With an operators list configured, the backend refuses those actions to anyone else, whatever the
caller's UI shows. With none configured, the console runs in single-user local mode and whoever
runs it is the operator. Every action is recorded in the ledger with who did it.
"""

from __future__ import annotations

import getpass
import os

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


def is_operator(settings: Settings, who: str | None) -> bool:
    """Whether ``who`` may launch, rerun, cancel and delete (everyone, in single-user mode)."""
    if not settings.operators:
        return True
    return who is not None and who.lower() in {operator.lower() for operator in settings.operators}


def require_operator(settings: Settings, who: str | None, action: str) -> None:
    """Refuse an operator action to anyone else, with a one-line reason."""
    if not is_operator(settings, who):
        raise NotAllowed(
            f"{who or 'an anonymous user'} may not {action}: only operators may ({', '.join(settings.operators)})"
        )
