"""Measuring: repeated samples with median/min/max, per-statement timing, and where time goes.

Everything here observes the product from outside: a statement timer wraps one adapter instance's
``query`` and ``execute``, and the profile samples stacks from another thread. Nothing patches product
modules, so what is measured is the code as committed (or as edited in the checkout right now).
"""

from __future__ import annotations

import functools
import os
import statistics
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIRS = ("backfill", "ui", "pages")
"""Where the product's own code lives (the profile charges library time to its caller here)."""


def load_1min() -> float:
    """The 1-minute load average now (other engineers' tests share the machine)."""
    return os.getloadavg()[0]


@dataclass
class Row:
    """One line of the results table: a measurement of one warehouse size, every sample kept."""

    key: str
    label: str
    size: int
    unit: str  # "ms", "s", "MB", "statements", "x", "dates"
    samples: list[float] = field(default_factory=list)
    load: float = 0.0  # 1-minute load average when the measurement started
    note: str = ""

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


def repeat(
    fn: Callable[[Any], Any],
    times: int,
    setup: Callable[[], Any] | None = None,
    teardown: Callable[[Any], None] | None = None,
) -> list[float]:
    """Seconds of ``fn(setup())`` over ``times`` runs; setup and teardown stay outside the clock."""
    seconds = []
    for _ in range(times):
        state = setup() if setup else None
        try:
            started = time.perf_counter()
            fn(state)
            seconds.append(time.perf_counter() - started)
        finally:
            if teardown:
                teardown(state)
    return seconds


class StatementTimer:
    """Times every statement one adapter sends, by the first line of its template."""

    def __init__(self, warehouse):
        self.warehouse = warehouse
        self.calls: list[tuple[str, float]] = []
        for name in ("query", "execute"):
            original = getattr(warehouse, name)
            setattr(warehouse, name, self._timed(name, original))

    def _timed(self, kind: str, original: Callable) -> Callable:
        def timed(template: str, params=None, **options):
            started = time.perf_counter()
            try:
                return original(template, params, **options)
            finally:
                self.calls.append((statement_label(kind, template), time.perf_counter() - started))

        return timed

    def reset(self) -> None:
        self.calls.clear()

    @property
    def seconds(self) -> float:
        return sum(seconds for _, seconds in self.calls)

    def by_label(self) -> dict[str, tuple[int, float]]:
        """(count, seconds) per statement label, slowest first."""
        totals: dict[str, list[float]] = defaultdict(list)
        for label, seconds in self.calls:
            totals[label].append(seconds)
        ordered = sorted(totals.items(), key=lambda item: -sum(item[1]))
        return {label: (len(times), sum(times)) for label, times in ordered}


def statement_label(kind: str, template: str) -> str:
    """A short name for a statement: its kind and first words; a script also lists its statements."""
    parts = [" ".join(part.split()) for part in template.split(";") if part.strip()]
    if len(parts) == 1:
        return f"{kind}: {parts[0][:70]}"
    keywords = [part.split(None, 1)[0].upper() for part in parts]
    body = next((part for part in parts if not part.upper().startswith(("BEGIN", "COMMIT"))), parts[0])
    return f"{kind} script ({' + '.join(keywords)}): {body[:60]}"


@dataclass(frozen=True)
class Hotspot:
    """A function of the product, the wall time charged to it and its busiest line."""

    where: str
    seconds: float
    share: float
    line: int


def profile(
    fn: Callable[[], Any], top: int = 8, threads: str | None = None, interval_s: float = 0.005
) -> tuple[float, list[Hotspot]]:
    """Run ``fn`` once while sampling stacks; returns its wall seconds and the product's hotspots.

    Each sample is charged to the innermost frame of the product's own code (``backfill/``, ``ui/``,
    ``pages/``, ``app.py``), so time inside pandas, DuckDB or SQLite lands on the line of ours that
    called it. ``threads`` names the threads to sample by prefix (Streamlit runs pages in
    ``ScriptRunner.scriptThread``); by default the calling thread.
    """
    caller = threading.get_ident()
    by_function: Counter = Counter()
    by_line: Counter = Counter()
    taken = 0
    stop = threading.Event()

    def sampled_threads() -> list[int]:
        if threads is None:
            return [caller]
        return [t.ident for t in threading.enumerate() if t.name.startswith(threads) and t.ident]

    def sample() -> None:
        nonlocal taken
        while not stop.wait(interval_s):
            frames = sys._current_frames()
            for ident in sampled_threads():
                frame = frames.get(ident)
                if frame is None:
                    continue
                taken += 1
                owner = _innermost_product_frame(frame)
                if owner is None:
                    by_function["(outside the product's code: libraries, Streamlit)"] += 1
                    continue
                code = owner.f_code
                where = f"{_relative(code.co_filename)}:{code.co_firstlineno} {code.co_name}"
                by_function[where] += 1
                by_line[(where, owner.f_lineno)] += 1

    sampler = threading.Thread(target=sample, name="bench-sampler", daemon=True)
    started = time.perf_counter()
    sampler.start()
    try:
        fn()
    finally:
        stop.set()
        sampler.join()
    wall = time.perf_counter() - started
    spots = []
    for where, count in by_function.most_common(top):
        lines = [(n, line) for (w, line), n in by_line.items() if w == where]
        busiest = max(lines)[1] if lines else 0
        spots.append(Hotspot(where, wall * count / max(taken, 1), count / max(taken, 1), busiest))
    return wall, spots


def _innermost_product_frame(frame):
    while frame is not None:
        if _is_product_file(frame.f_code.co_filename):
            return frame
        frame = frame.f_back
    return None


@functools.lru_cache(maxsize=4096)
def _is_product_file(filename: str) -> bool:
    try:
        relative = Path(filename).resolve().relative_to(PROJECT_ROOT)
    except (ValueError, OSError):
        return False
    return relative.parts[0] in PROJECT_DIRS or relative.name == "app.py"


def _relative(filename: str) -> str:
    return str(Path(filename).resolve().relative_to(PROJECT_ROOT))


@dataclass
class Profile:
    """Where the time of one measurement goes, from one extra sampled run."""

    title: str
    wall_s: float
    hotspots: list[Hotspot]
    statements: dict[str, tuple[int, float]] = field(default_factory=dict)
    note: str = ""
