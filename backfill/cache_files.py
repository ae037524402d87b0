"""Files of the caches kept between processes: written whole or not at all, read back only intact.

A cache file is a header line with the SHA-256 of what follows, then the payload. It is written to a
private temporary file beside its place and renamed over it, so a reader sees the old file or the new
one whole, and two processes writing at once never mix their bytes (the last rename wins). A file
that is missing, unreadable, cut short or altered reads as absent: the caller works the answer out
again and writes the file anew.

A folder keeps only what is in use: reading a file marks it used (its time, at most once a day), and
a process's first write to a folder deletes the files nobody used for :data:`UNUSED_FOR_S` (their
warehouse or pipeline changed since) and the temporary files of writers that died mid-write.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from pathlib import Path

HEADER = "backfill-cache sha256"

UNUSED_FOR_S = 30 * 86_400.0
"""A cache file nobody read or wrote for this long is deleted by the next write to its folder."""

LEFTOVER_AFTER_S = 3_600.0
"""A writer's temporary file this old was left by a process that stopped mid-write."""

MARK_USED_EVERY_S = 86_400.0
"""Reading a file marks it used (sets its time) when its time is older than this."""

_swept: set[Path] = set()
_sweeping = threading.Lock()


def write(path: Path, payload: bytes) -> None:
    """Replace ``path`` with ``payload`` atomically (creating its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(payload).hexdigest()
    temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(temp, "wb") as file:
            file.write(f"{HEADER} {digest}\n".encode() + payload)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    _sweep_once(path.parent)


def read(path: Path) -> bytes | None:
    """The payload written to ``path``, or None when it is missing or not intact."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, newline, payload = data.partition(b"\n")
    if not newline or head != f"{HEADER} {hashlib.sha256(payload).hexdigest()}".encode():
        return None
    _mark_used(path)
    return payload


def _mark_used(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only folder keeps its files as they are
        if time.time() - path.stat().st_mtime > MARK_USED_EVERY_S:
            os.utime(path)


def _sweep_once(folder: Path) -> None:
    """Delete the folder's unused files and dead writers' temporary files (once per process)."""
    with _sweeping:
        if folder in _swept:
            return
        _swept.add(folder)
    now = time.time()
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            leftover = entry.name.startswith(".") and entry.name.endswith(".tmp")
            with contextlib.suppress(OSError):
                if not entry.is_file(follow_symlinks=False):
                    continue
                age = now - entry.stat(follow_symlinks=False).st_mtime
                if age > (LEFTOVER_AFTER_S if leftover else UNUSED_FOR_S):
                    os.unlink(entry.path)
