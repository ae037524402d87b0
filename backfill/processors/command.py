"""The ``command`` processor: the team's own backfill job, run as a subprocess for a batch of dates.

The contract (SPEC 7.2), kept small so a job also works when launched by hand:

- ``argv`` is run without a shell, in the pipeline file's folder; ``python`` as its first word is
  the console's own Python. Placeholders: ``{dates}`` (comma-separated YYYY-MM-DD), ``{start}``,
  ``{end}``, ``{dates_file}`` (a file with one date a line).
- The environment also carries ``BACKFILL_DATES``, ``BACKFILL_RUN_ID``, ``BACKFILL_STAGE`` and
  ``BACKFILL_WAREHOUSE``; for a gated stage, ``BACKFILL_MIN_UPSTREAM_COVERAGE_PCT`` (the run's
  threshold), and ``BACKFILL_SKIP_GATES=1`` when the operator skipped the gate.
- Exit 0 means the attempt finished; another exit, a timeout (the process group is killed) or a
  signal is a failure, classified from the last lines of its output like any warehouse error.
- A job may print JSON lines ``{"date": "YYYY-MM-DD", "status": "done"|"failed", "error": "..."}``;
  whatever it says, the console re-measures the dates afterwards and decides.
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
from collections import deque
from typing import Any

from backfill.processors.base import BatchResult, JobContext, JobFailed, Processor

TAIL_LINES = 5
"""Lines of output kept for the error message and its classification."""

PYTHON_NAMES = ("python", "python3")


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
        process = subprocess.Popen(
            self.argv(dates, dates_file),
            cwd=self.pipeline.folder,
            env=self.environment(dates, context),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so a timeout kills the job's children too
        )
        tail: deque[str] = deque(maxlen=TAIL_LINES)
        result = BatchResult()
        wanted = {day.isoformat(): day for day in dates}

        def read() -> None:
            assert process.stdout is not None
            for raw in process.stdout:
                line = raw.rstrip("\n")
                outcome = _outcome(line)
                if outcome is not None and outcome.get("date") in wanted:
                    if outcome.get("status") == "failed":
                        result.failed[wanted[outcome["date"]]] = str(outcome.get("error") or "failed")
                    continue
                if line.strip():
                    tail.append(line)
                    context.log(line)

        reader = threading.Thread(target=read, name=f"job-output-{self.stage.name}", daemon=True)
        reader.start()
        try:
            code = process.wait(timeout=self.config.timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            reader.join()
            raise JobFailed(
                f"killed after its {self.config.timeout_s:g} s timeout", "\n".join(tail)
            ) from None
        except BaseException:
            _kill_group(process)
            raise
        reader.join()
        if code < 0:
            raise JobFailed(f"killed by signal {signal.Signals(-code).name}", "\n".join(tail))
        if code != 0:
            raise JobFailed(f"exited with status {code}", "\n".join(tail))
        return result

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
    if isinstance(value, dict) and "date" in value and value.get("status") in ("done", "failed"):
        return value
    return None


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
