"""The supervisor between a run and one command job: the job's whole process tree lives and dies
with the run's process (issue 21).

Run by file path (``python supervisor.py JOB_ARGV...``), standard library only, so it starts in
milliseconds and imports nothing of the package. Its contract with the runner:

- fd 0 is a pipe from the runner that the runner never writes. When it reads end of file, the
  runner's process is gone (SIGKILL, the OOM killer, a crash): the supervisor kills the job's tree.
  The kernel closes that pipe whichever of the runner's threads started the job, which a
  parent-death signal (fired on the death of the parent *thread*) would not promise alone.
- fd 1 is the job's output (stdout and stderr both), read by the runner.
- fd 2 carries one status line when the supervisor ends: ``exit N``, ``signal N``, ``killed`` or
  ``error MESSAGE``.
- SIGTERM, SIGINT or SIGHUP: kill the job's tree and end (``killed``).

The supervisor is a child subreaper (``PR_SET_CHILD_SUBREAPER``): a descendant whose parent dies,
even one that started its own session, is re-parented to it rather than to init, so "the job's tree"
is every descendant of the supervisor, found in /proc. When the job's main process exits, whatever
remains of the tree is killed before the status is written, so verification never sees a straggler
write, and nothing but the supervisor's tree can hold the output pipe open.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
POLL_S = 0.05
"""How often the supervisor looks at its job and its pipe from the runner."""
KILL_WITHIN_S = 10.0
"""How long the supervisor keeps killing a tree that forks while it is killed."""


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def _descendants(root: int) -> set[int]:
    """Every process below ``root`` (zombies included: they still need reaping), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        children.setdefault(int(fields[1]), []).append(int(entry))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _reap() -> None:
    """Collect every ended child (re-parented orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def kill_tree(job_group: int | None) -> None:
    """SIGKILL every descendant until none is left (a tree may fork while it is killed)."""
    if job_group is not None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(job_group, signal.SIGKILL)
    deadline = time.monotonic() + KILL_WITHIN_S
    while time.monotonic() < deadline:
        left = _descendants(os.getpid())
        if not left:
            return
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _reap()
        time.sleep(0.01)


def _status(line: str) -> None:
    os.write(2, (line + "\n").encode())


def main(argv: list[str]) -> int:
    runner = os.getppid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    # A second line of defence beside the pipe: end when the starting thread ends.
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    stop = {"asked": False}

    def asked_to_stop(signum, frame) -> None:  # noqa: ARG001 - the signal module's signature
        stop["asked"] = True

    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(number, asked_to_stop)
    if os.getppid() != runner:  # the runner died before the death signal was set
        return 0

    def orphan_guard() -> None:
        # The job dies with its supervisor even if the supervisor is killed with SIGKILL
        # (the supervisor has one thread, so the "parent thread" is the supervisor itself).
        _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)

    try:
        job = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=1,
            stderr=1,
            start_new_session=True,  # its own group: one killpg reaches most of the tree at once
            preexec_fn=orphan_guard,  # noqa: PLW1509 - the supervisor has one thread
        )
    except OSError as exc:
        _status(f"error cannot start {argv[0]!r}: {exc.strerror or exc}")
        return 0
    code: int | None = None
    while code is None:
        if stop["asked"]:
            kill_tree(job.pid)
            _status("killed")
            return 0
        readable, _, _ = select.select([0], [], [], POLL_S)
        if readable and not os.read(0, 4096):
            kill_tree(job.pid)  # the runner is gone: nobody verifies what the job would write now
            _status("killed")
            return 0
        code = job.poll()
    kill_tree(job.pid)  # what the job left running (children, an escaped grandchild) ends with it
    _status(f"signal {-code}" if code < 0 else f"exit {code}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
