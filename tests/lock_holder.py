"""A process that holds a DuckDB file as another writer would (a CLI backfill, a second console).

``python tests/lock_holder.py FILE`` opens FILE read-write (DuckDB then locks it against
every other process), prints ``held`` and keeps it until SIGTERM or SIGINT, then closes it and
prints ``released``. Tests release it by signal, never by a timer.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

OPEN_WITHIN_S = 30.0
"""The console may hold the file for a moment (it closes it when idle): wait for it, as a CLI does."""


def main(path: str) -> None:
    released = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda *_: released.set())
    deadline = time.monotonic() + OPEN_WITHIN_S
    while True:
        try:
            database = duckdb.connect(path)
            break
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            released.wait(0.1)
    print("held", flush=True)
    released.wait()
    database.close()
    print("released", flush=True)


@contextmanager
def warehouse_held(path: str) -> Iterator[subprocess.Popen]:
    """Another process holds the DuckDB file until the block ends (then released by SIGTERM)."""
    holder = subprocess.Popen([sys.executable, str(Path(__file__)), path], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held", "the lock holder did not take the file"
        yield holder
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
