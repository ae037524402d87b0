"""Named crash points, so tests can kill a backfill at an exact moment and then resume it.

When ``BACKFILL_CRASH_AT`` names a point (``after_replace``, or ``after_replace:3`` for its third
passage), the process sends itself SIGKILL there: no cleanup, no ``finally``, exactly like a machine
losing power. Unset, a crash point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

ENV = "BACKFILL_CRASH_AT"

BEFORE_REPLACE = "before_replace"
"""A batch's items are marked running; nothing is written yet."""
IN_TRANSACTION = "in_transaction"
"""Inside a date-replacing transaction, after its DELETE, before its INSERT and COMMIT."""
AFTER_REPLACE = "after_replace"
"""The warehouse committed the batch; the ledger does not know yet."""

_passages: Counter[str] = Counter()


def crash_point(name: str) -> None:
    """Die here, at once, if the environment asks for it."""
    wanted = os.environ.get(ENV)
    if not wanted or not wanted.startswith(name):
        return
    point, _, nth = wanted.partition(":")
    if point != name:
        return
    _passages[name] += 1
    if _passages[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
