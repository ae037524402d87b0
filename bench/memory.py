"""Peak memory of one backfill, measured in a process of its own so runs never share a heap.

Two kinds, in separate processes because tracemalloc's own bookkeeping would inflate the RSS:

- ``tracemalloc``: the peak of Python allocations during the backfill (pandas frames, ledger rows);
  DuckDB's buffers are native memory and do not show here;
- ``rss``: the process's peak resident set size, which does include DuckDB's native memory, the
  interpreter and every imported library. It is read from ``VmHWM`` in ``/proc/self/status``, reset
  (``/proc/self/clear_refs``) just before the backfill, so the peak is the backfill's; the RSS at that
  moment is reported too. ``getrusage``'s ``ru_maxrss`` is recorded but not used: on Linux a child
  inherits its parent's high-water mark across fork and exec, so in a subprocess of a large benchmark
  process it reports the parent's size.

Run as ``python -m bench.memory SOURCE SCRATCH --batch-size N --mode rss`` (one JSON line out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import time
import tracemalloc
import uuid
from pathlib import Path

MB = 1024 * 1024


def _ru_maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MB  # Linux reports KiB


def _status_mb(field: str) -> float:
    """A memory figure of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024 / MB
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> bool:
    """Start VmHWM afresh from the current RSS (Linux 4.0+); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def measure(source: Path, scratch: Path, batch_size: int | None, mode: str, what: str = "full") -> dict:
    """Copy the warehouse, do ``what`` in this process (``full``: back all of it up; ``december``: the
    31-date backfill; ``coverage``: a cold coverage measurement of every date), report memory and seconds."""
    from backfill import coverage
    from backfill.config import Settings
    from backfill.launch import run_here
    from backfill.request import BackfillRequest
    from backfill.warehouse import connect

    tag = uuid.uuid4().hex[:8]
    target = scratch / f"memory-{tag}.duckdb"
    ledger = scratch / f"memory-{tag}.sqlite"
    shutil.copy(source, target)
    try:
        settings = Settings(
            warehouse=str(target), ledger=str(ledger), max_range_days=100_000, retry_delays=(0.0, 0.0, 0.0)
        )
        warehouse = connect(settings)
        first, last = coverage.data_bounds(warehouse)
        if what == "december":
            first, last = dt.date(2021, 12, 1), dt.date(2021, 12, 31)
        request = BackfillRequest.build(settings, start=first, end=last, batch_size=batch_size)
        process_peak_mb = _status_mb("VmHWM")
        start_mb = _status_mb("VmRSS")
        reset = _reset_peak_rss()
        if mode == "tracemalloc":
            tracemalloc.start()
        started = time.perf_counter()
        if what == "coverage":
            daily = coverage.daily_coverage(warehouse, settings, first, last)
            coverage.monthly_coverage(warehouse, settings, first, last, daily=daily)
            status = "measured"
        else:
            status = run_here(settings, request, "bench", warehouse=warehouse, sleep=lambda _: None).status
        seconds = time.perf_counter() - started
        report = {"mode": mode, "status": status, "seconds": seconds}
        if mode == "tracemalloc":
            report["tracemalloc_peak_mb"] = tracemalloc.get_traced_memory()[1] / MB
            tracemalloc.stop()
        report["peak_rss_mb"] = _status_mb("VmHWM")
        report["peak_is_the_backfills"] = reset
        report["process_peak_rss_mb"] = max(process_peak_mb, report["peak_rss_mb"])
        report["rss_at_start_mb"] = start_mb
        report["ru_maxrss_mb"] = _ru_maxrss_mb()
        warehouse.close()
        return report
    finally:
        for path in (target, Path(f"{target}.wal"), ledger, Path(f"{ledger}-wal"), Path(f"{ledger}-shm")):
            path.unlink(missing_ok=True)


def measure_in_subprocess(
    source: Path, scratch: Path, batch_size: int | None, mode: str, what: str = "full"
) -> dict:
    """:func:`measure` in a fresh interpreter; raises with its stderr when it fails."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", str(source), str(scratch), "--batch-size", str(batch_size or "auto"),
         "--mode", mode, "--what", what],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("scratch", type=Path)
    parser.add_argument("--batch-size", required=True, help="dates per batch, or auto (sized by the work)")
    parser.add_argument("--mode", choices=("rss", "tracemalloc"), required=True)
    parser.add_argument("--what", choices=("full", "december", "coverage"), default="full")
    args = parser.parse_args(argv)
    size = None if args.batch_size == "auto" else int(args.batch_size)
    print(json.dumps(measure(args.source, args.scratch, size, args.mode, args.what)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
