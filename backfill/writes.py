"""Whether this process has written anything yet: the CLI's exit 2 promises that it has not.

Every committed write transaction of the ledger (and of the watch's tables in it) is counted here;
a command that fails after one exits 1, with what was written said by its records, never 2.
"""

from __future__ import annotations

import threading

_lock = threading.Lock()
_count = 0


def note_write() -> None:
    """Count one committed write of this process."""
    global _count
    with _lock:
        _count += 1


def writes_so_far() -> int:
    """Committed writes of this process so far (compare two readings to know if a step wrote)."""
    return _count
