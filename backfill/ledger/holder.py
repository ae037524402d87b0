"""The process that holds a run: host, pid and the pid's start time, and whether it is still there."""

from __future__ import annotations

import functools
import os
import socket
from dataclasses import dataclass


@dataclass(frozen=True)
class Holder:
    """A process on a host; ``started`` (Linux clock ticks since boot) tells a reused pid apart."""

    host: str | None
    pid: int
    started: int | None = None

    def alive(self) -> bool:
        """Whether this process (on this host) still exists; a stopped process does, a zombie does not."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # another user's process: it exists
        state, started = _stat(self.pid)
        if state == "Z":
            return False  # killed, not yet reaped by its parent
        return self.started is None or started is None or started == self.started


def this_process() -> Holder:
    """This process, as recorded when it claims a run."""
    pid = os.getpid()
    return Holder(socket.gethostname(), pid, _start_time(pid))


@functools.cache
def _start_time(pid: int) -> int | None:
    return _stat(pid)[1]


def _stat(pid: int) -> tuple[str | None, int | None]:
    """(state, start time) from /proc/PID/stat; (None, None) where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None, None
    # After the command name: state is field 3 of stat(5), starttime field 22.
    return fields[0], int(fields[19])
