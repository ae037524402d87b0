"""Files of the caches kept between processes: written whole or not at all, read back only intact.

A cache file is a header line with the SHA-256 of what follows, then the payload. It is written to a
private temporary file beside its place and renamed over it, so a reader sees the old file or the new
one whole, and two processes writing at once never mix their bytes (the last rename wins). A file
that is missing, unreadable, cut short or altered reads as absent: the caller works the answer out
again and writes the file anew.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from pathlib import Path

HEADER = "backfill-cache sha256"


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


def read(path: Path) -> bytes | None:
    """The payload written to ``path``, or None when it is missing or not intact."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    head, newline, payload = data.partition(b"\n")
    if not newline or head != f"{HEADER} {hashlib.sha256(payload).hexdigest()}".encode():
        return None
    return payload
