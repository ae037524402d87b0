"""The ``command`` processor: the team's own backfill job, run as a subprocess for a batch of dates.

The contract (SPEC 7.2), kept small so a job also works when launched by hand:

- ``argv`` is run without a shell, in the pipeline file's folder; ``python`` as its first word is
  the console's own Python. Placeholders: ``{dates}`` (comma-separated YYYY-MM-DD), ``{start}``,
  ``{end}``, ``{dates_file}`` (a file with one date a line).
- The environment also carries ``BACKFILL_DATES``, ``BACKFILL_RUN_ID``, ``BACKFILL_STAGE`` and
  ``BACKFILL_WAREHOUSE``; for a gated stage, ``BACKFILL_MIN_UPSTREAM_COVERAGE_PCT`` (the run's
  threshold), and ``BACKFILL_SKIP_GATES=1`` when the operator skipped the gate.
- Exit 0 means the attempt finished; another exit, a timeout or a signal is a failure, classified
  from the last lines of its output like any warehouse error.
- A job may print JSON lines ``{"date": "YYYY-MM-DD", "status": "done"|"failed", "error": "..."}``;
  whatever it says, the console re-measures the dates afterwards and decides. A line that does not
  fit (a ``date`` that is a list or an object) is ordinary output, logged.

The job runs under a supervisor (:mod:`.supervisor`) that ends its whole process tree when the run's
process ends (however it ends), when the job's main process exits (what it leaves running is killed
before verification), at ``timeout_s``, and at once when the run loses its lease or is cancelled.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from typing import Any

from backfill.processors.base import BatchResult, JobContext, JobFailed, JobTimedOut, Processor

TAIL_LINES = 5
"""Lines of output kept for the error message and its classification."""

PYTHON_NAMES = ("python", "python3")

SUPERVISOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervisor.py")
"""The program each job runs under (see its docstring)."""

CHECK_EVERY_S = 1.0
"""How often a running job's run is asked whether the job is still wanted (lease, cancel)."""

STOP_WITHIN_S = 15.0
"""How long the supervisor gets to kill a job's tree before its own group is killed."""

READER_JOIN_S = 5.0
"""How long the output is read after the job's tree ended."""

LOG_BATCH_LINES = 200
"""Output lines written to the ledger's log in one transaction at most."""

MAX_LINE_BYTES = 1 << 20
"""Output without a line end is taken as a line at this length."""


class CommandProcessor(Processor):
    """Run the stage's command for a batch of dates, streaming its output to the run's log."""

    plan_action = "run the command"
    holds_warehouse = False

    def argv(self, dates: list[dt.date], dates_file: str) -> list[str]:
        """The command line for a batch, placeholders filled in."""
        values = {
            "dates": ",".join(day.isoformat() for day in dates),
            "start": min(dates).isoformat(),
            "end": max(dates).isoformat(),
            "dates_file": dates_file,
        }
        argv = [arg.format_map(values) for arg in self.config.argv]
        if argv[0] in PYTHON_NAMES:
            argv[0] = sys.executable
        return argv

    def environment(self, dates: list[dt.date], context: JobContext) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            BACKFILL_DATES=",".join(day.isoformat() for day in dates),
            BACKFILL_RUN_ID=context.run_id,
            BACKFILL_STAGE=self.stage.name,
            BACKFILL_WAREHOUSE=context.warehouse_url,
        )
        # The run's gate, for jobs that check their upstream themselves (the team's --skip-mlfs-check).
        if context.skip_gates:
            env["BACKFILL_SKIP_GATES"] = "1"
        if context.gate_pct is not None:
            env["BACKFILL_MIN_UPSTREAM_COVERAGE_PCT"] = f"{context.gate_pct:g}"
        return env

    def run(self, dates: list[dt.date], context: JobContext) -> BatchResult:
        with tempfile.NamedTemporaryFile("w", prefix="backfill-dates-", suffix=".txt", delete=False) as file:
            file.write("".join(f"{day.isoformat()}\n" for day in dates))
        try:
            return self._run(dates, context, file.name)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(file.name)

    def _run(self, dates: list[dt.date], context: JobContext, dates_file: str) -> BatchResult:
        argv = self.argv(dates, dates_file)
        # The job runs under a supervisor of its own (supervisor.py): the job's whole tree ends when
        # this process ends, however it ends, and when the job's main process exits.
        process = subprocess.Popen(
            [sys.executable, SUPERVISOR, *argv],
            cwd=self.pipeline.folder,
            env=self.environment(dates, context),
            stdin=subprocess.PIPE,  # never written: its closing tells the supervisor this process ended
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # a Ctrl-C at the terminal reaches the run, which stops the job
        )
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        result = BatchResult()
        wanted = {day.isoformat(): day for day in dates}

        def take(lines: list[str]) -> None:
            """One burst of output: outcomes noted, the rest kept in the tail and logged together."""
            logged = []
            for line in lines:
                outcome = _outcome(line)
                day = wanted.get(outcome["date"]) if outcome is not None else None
                if day is not None:
                    if outcome is not None and outcome["status"] == "failed":
                        result.failed[day] = str(outcome.get("error") or "failed")
                    continue
                if line.strip():
                    tail.append(line)
                    logged.append(line)
            for start in range(0, len(logged), LOG_BATCH_LINES):
                context.log_batch(logged[start : start + LOG_BATCH_LINES])

        def read() -> None:
            # Whatever the pipe holds at once is one burst (one ledger transaction per 200 lines),
            # not a transaction a line.
            assert process.stdout is not None
            pipe = process.stdout.fileno()
            pending = b""
            while chunk := os.read(pipe, 1 << 16):
                *complete, pending = (pending + chunk).split(b"\n")
                if len(pending) > MAX_LINE_BYTES:  # a line without end is still output
                    complete, pending = [*complete, pending], b""
                take([line.decode(errors="replace").rstrip("\r") for line in complete])
            if pending:
                take([pending.decode(errors="replace")])

        reader = threading.Thread(target=read, name=f"job-output-{self.stage.name}", daemon=True)
        reader.start()
        try:
            status = self._wait(process, context)
        except subprocess.TimeoutExpired:
            _stop(process)
            reader.join(READER_JOIN_S)
            raise JobTimedOut(
                f"killed after its {self.config.timeout_s:g} s timeout", "\n".join(tail)
            ) from None
        except BaseException:
            _stop(process)
            reader.join(READER_JOIN_S)
            raise
        else:
            # The supervisor killed what the job left before it ended, so the output pipe has no
            # writer left; the bound is for what no supervisor can reach (a process that left its tree).
            reader.join(READER_JOIN_S)
            if reader.is_alive():
                context.log(
                    f"the job's output stayed open {READER_JOIN_S:g} s after it ended; no longer read"
                )
        finally:
            _close_pipes(process, reader)
        kind, _, value = status.partition(" ")
        if kind == "signal":
            raise JobFailed(f"killed by signal {_signal_name(int(value))}", "\n".join(tail))
        if kind == "exit" and value != "0":
            raise JobFailed(f"exited with status {value}", "\n".join(tail))
        if kind == "error":
            raise JobFailed(value, value)
        if kind != "exit":
            raise JobFailed(f"its supervisor ended unexpectedly: {status}", "\n".join(tail))
        return result

    def _wait(self, process: subprocess.Popen, context: JobContext) -> str:
        """Wait for the supervisor's status line, asking the run every CHECK_EVERY_S whether the job
        is still wanted (a lost lease or a cancel raises); TimeoutExpired at ``timeout_s``."""
        deadline = time.monotonic() + self.config.timeout_s
        while True:
            left = deadline - time.monotonic()
            try:
                process.wait(timeout=max(0.0, min(CHECK_EVERY_S, left)))
                break
            except subprocess.TimeoutExpired:
                if left <= CHECK_EVERY_S:
                    raise
            context.still_wanted()
        assert process.stderr is not None
        said = process.stderr.read().decode(errors="replace").strip().splitlines()
        return said[-1] if said else f"error its supervisor exited with status {process.returncode}"

    def describe(self) -> dict[str, Any]:
        return {"kind": "command", "argv": list(self.config.argv)}


def _outcome(line: str) -> dict | None:
    """A per-date outcome line of the contract, or None for ordinary output."""
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    # A date that is not a string (a list, an object) is not an outcome: the line is logged as output.
    if (
        isinstance(value, dict)
        and isinstance(value.get("date"), str)
        and value.get("status") in ("done", "failed")
    ):
        return value
    return None


def _stop(process: subprocess.Popen) -> None:
    """Ask the supervisor to kill the job's tree; if it does not end, kill its group outright."""
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        process.wait(timeout=STOP_WITHIN_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _close_pipes(process: subprocess.Popen, reader: threading.Thread) -> None:
    """Close this side of the supervisor's pipes (a long run starts thousands of jobs); the output
    only once its reader is done with it."""
    for pipe in (process.stdin, process.stderr) + ((process.stdout,) if not reader.is_alive() else ()):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)
