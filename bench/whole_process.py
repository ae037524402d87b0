"""What a user waits for at the command line (issue 26): ``python -m backfill ...`` as a new process
each time, interpreter start and imports included.

Each command is timed twice over: first-time (a fresh copy of the warehouse, a ledger and a cache
folder that do not exist yet: a new user's first command) and warm (the ledger and cache folder as
one earlier run of the same command left them, restored before each sample so no sample finds more
history than another). The full history's first and warm runs are interleaved in pairs, so a slow
spell of the shared machine slows both sides of a pair instead of one side of the comparison.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from backfill import coverage
from backfill.warehouse import connect
from bench.product import DECEMBER, Lab, _wait_until_settled
from bench.timing import PROJECT_ROOT, Row, load_1min

HEAVY = ("pandas", "numpy", "pyarrow", "sqlalchemy", "duckdb", "sqlglot", "tenacity")
"""Libraries whose import time the profile of ``run`` reports one by one."""


@dataclass
class Place:
    """Where one command's process reads and writes: a warehouse copy, a ledger, a cache folder."""

    warehouse: Path
    ledger: Path
    cache: Path

    def env(self) -> dict[str, str]:
        """The process environment: no developer settings, this place's files, any range allowed."""
        clean = {name: value for name, value in os.environ.items() if not name.startswith("BACKFILL_")}
        return clean | {
            "BACKFILL_CONFIG": os.devnull,
            "BACKFILL_WAREHOUSE": str(self.warehouse),
            "BACKFILL_LEDGER": str(self.ledger),
            "BACKFILL_CACHE_DIR": str(self.cache),
            "BACKFILL_MAX_RANGE_DAYS": "100000",
        }

    def ledger_files(self) -> list[Path]:
        return [self.ledger, Path(f"{self.ledger}-wal"), Path(f"{self.ledger}-shm")]

    def forget(self) -> None:
        """No ledger and no cache folder: what a first command finds."""
        for path in self.ledger_files():
            path.unlink(missing_ok=True)
        shutil.rmtree(self.cache, ignore_errors=True)

    def save(self, into: Path) -> None:
        """Keep the ledger and cache folder as they are now (to restore before each warm sample)."""
        shutil.rmtree(into, ignore_errors=True)
        into.mkdir(parents=True)
        for path in self.ledger_files():
            if path.exists():
                shutil.copy(path, into / path.name)
        if self.cache.exists():
            shutil.copytree(self.cache, into / "cache")

    def restore(self, saved: Path) -> None:
        self.forget()
        for path in self.ledger_files():
            if (saved / path.name).exists():
                shutil.copy(saved / path.name, path)
        if (saved / "cache").exists():
            shutil.copytree(saved / "cache", self.cache)

    def remove(self) -> None:
        self.forget()
        for path in (self.warehouse, Path(f"{self.warehouse}.wal")):
            path.unlink(missing_ok=True)


def new_place(lab: Lab, source: Path) -> Place:
    """A fresh copy of ``source`` and the paths of a ledger and cache folder not made yet."""
    folder = lab.scratch / "whole" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    place = Place(folder / "warehouse.duckdb", folder / "ledger.sqlite", folder / "cache")
    shutil.copy(source, place.warehouse)
    return place


def timed(argv: Sequence[str], env: dict[str, str], ok: tuple[int, ...] = (0,)) -> float:
    """Seconds of ``python -m backfill argv`` as a new process (its output discarded)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "backfill", *argv], cwd=PROJECT_ROOT, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)  # fmt: skip
    took = time.perf_counter() - started
    if done.returncode not in ok:
        raise RuntimeError(
            f"python -m backfill {' '.join(argv)} exited {done.returncode}: {done.stderr[-1000:]}"
        )
    return took


def _refresh(place: Place, source: Path) -> None:
    """The warehouse as it was before any run (a run writes to it)."""
    Path(f"{place.warehouse}.wal").unlink(missing_ok=True)
    shutil.copy(source, place.warehouse)


def first_and_warm(
    source: Path, lab: Lab, argv: Sequence[str], writes: bool, ok: tuple[int, ...] = (0,)
) -> tuple[list[float], list[float]]:
    """Interleaved samples of a command, first-time and warm (see the module's docstring).

    ``writes``: the command writes to the warehouse, so each sample gets it as it was; a command that
    only reads keeps one copy, settled (its change stamp vouches for it), as a user's file is."""
    place = new_place(lab, source)
    saved = place.warehouse.parent / "warm"
    try:
        timed(argv, place.env(), ok)  # the earlier run whose ledger and cache a warm sample finds
        place.save(saved)
        if not writes:
            _wait_until_settled(lab.settings(place.warehouse))
        first, warm = [], []

        def one(samples: list[float], prepare) -> float:
            if writes:
                _refresh(place, source)
            prepare()
            samples.append(timed(argv, place.env(), ok))
            return samples[-1]

        # Within the lab's time budget: expensive commands (the full history) stop repeating early.
        lab.within_budget(lambda: one(first, place.forget) + one(warm, lambda: place.restore(saved)))
        return first, warm
    finally:
        place.remove()
        shutil.rmtree(saved, ignore_errors=True)


def help_row(size: int, lab: Lab) -> Row:
    """Start-up alone: ``python -m backfill --help``."""
    load = load_1min()
    env = {name: value for name, value in os.environ.items() if not name.startswith("BACKFILL_")}
    samples = [timed(["--help"], env) for _ in range(lab.repeats)]
    python = [_python_alone() for _ in range(lab.repeats)]
    return Row("wp_help", "`python -m backfill --help`, whole process (start-up alone)", size, "s", samples,
               load, f"the interpreter alone (`python -c pass`): {statistics.median(python):.3f} s (median)")  # fmt: skip


def _python_alone() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def _pair_rows(
    key: str, label: str, size: int, first: list[float], warm: list[float], load: float, note: str
):
    ratio = [a / b for a, b in zip(first, warm)]
    return [
        Row(f"{key}_first", f"{label}, whole process, first-time (fresh ledger and cache)", size, "s", first, load,
            note),
        Row(f"{key}_warm", f"{label}, whole process, warm (ledger and cache of an earlier run)", size, "s", warm,
            load, note),
        Row(f"{key}_first_ratio", f"{label}: first-time / warm, whole process (interleaved pairs)", size, "x",
            ratio, load, f"medians {statistics.median(first):.2f} s and {statistics.median(warm):.2f} s"),
    ]  # fmt: skip


def december_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """``run`` of 2021-12-01..31, both stages."""
    load = load_1min()
    argv = ["run", "--start", str(DECEMBER[0]), "--end", str(DECEMBER[1])]
    first, warm = first_and_warm(source, lab, argv, writes=True)
    return _pair_rows("wp_dec", "`run` of 2021-12 (31 dates)", size, first, warm, load,
                      "a fresh copy of the warehouse each run")  # fmt: skip


def _bounds(source: Path, lab: Lab) -> tuple[str, str]:
    warehouse = connect(lab.settings(source))
    try:
        first, last = coverage.data_bounds(warehouse)
    finally:
        warehouse.close()
    return str(first), str(last)


def full_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """``run`` of every date of the warehouse, both stages, default settings."""
    load = load_1min()
    first_date, last_date = _bounds(source, lab)
    argv = ["run", "--start", first_date, "--end", last_date]
    first, warm = first_and_warm(source, lab, argv, writes=True)
    return _pair_rows("wp_full", "`run` of the whole history", size, first, warm, load,
                      f"{first_date}..{last_date}, a fresh copy of the warehouse each run")  # fmt: skip


def check_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """``check`` of the whole history (exit 1 is its answer when problems are open)."""
    load = load_1min()
    first_date, last_date = _bounds(source, lab)
    argv = ["check", "--start", first_date, "--end", last_date]
    first, warm = first_and_warm(source, lab, argv, writes=False, ok=(0, 1))
    return _pair_rows("wp_check", "`check` of the whole history", size, first, warm, load,
                      "one copy of the warehouse, unchanged between runs; warm: the ledger holds one earlier check")  # fmt: skip


def import_profile_row(source: Path, size: int, lab: Lab) -> Row:
    """Where a ``run`` of December spends its imports: ``-X importtime``, by library (first-time state)."""
    load = load_1min()
    totals: list[float] = []
    by_library: dict[str, list[float]] = {name: [] for name in HEAVY}
    for _ in range(min(lab.repeats, 3)):
        place = new_place(lab, source)
        try:
            done = subprocess.run(
                [sys.executable, "-X", "importtime", "-m", "backfill", "run",
                 "--start", str(DECEMBER[0]), "--end", str(DECEMBER[1])],
                cwd=PROJECT_ROOT, env=place.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                check=True,
            )  # fmt: skip
        finally:
            place.remove()
        total, packages = import_times(done.stderr)
        totals.append(total)
        for name in by_library:
            by_library[name].append(packages.get(name, 0.0))
    parts = [f"{name} {statistics.median(seconds):.3f} s" for name, seconds in by_library.items()]
    return Row("wp_import_run", "`run` of 2021-12, first-time: imports in all (-X importtime)", size, "s", totals,
               load, "by package, each with what it first brought in (pandas: numpy, pyarrow), medians, "
               "-X importtime's own cost included: " + ", ".join(parts))  # fmt: skip


def import_times(stderr: str) -> tuple[float, dict[str, float]]:
    """From ``-X importtime`` output: the seconds of every import in all, and of each package's own
    first import (cumulative: with whatever it imported first, wherever it was imported from)."""
    total, packages = 0.0, {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if not cumulative.strip().isdigit():  # the header line
            continue
        seconds = int(cumulative) / 1e6
        if not name.startswith("  "):  # one space: imported by no other module
            total += seconds
        packages.setdefault(name.strip(), seconds)
    return total, packages


def loop_ratio_row(loop: Row, full_first: Row) -> Row:
    """The per-date loop over the whole history against the whole-process first run of it."""
    ratio = loop.median / full_first.median
    return Row("ratio_loop_whole", "Ratio: per-date loop vs the product's whole-process first run (whole history)",
               full_first.size, "x", [ratio], max(loop.load, full_first.load),
               f"loop {loop.median:.1f} s ({loop.note}); product {full_first.median:.2f} s, median first-time, "
               "interpreter start and imports included")  # fmt: skip


def whole_process_rows(source: Path, size: int, lab: Lab, startup: bool, full_history: bool) -> list[Row]:
    """The whole-process rows of one warehouse size: December's ``run`` always; ``startup`` adds
    ``--help`` and the import profile of ``run`` (once per benchmark: they do not grow with the data);
    ``full_history`` the whole history's ``run`` and ``check``."""
    rows = [help_row(size, lab)] if startup else []
    rows += december_rows(source, size, lab)
    if startup:
        rows.append(import_profile_row(source, size, lab))
    if full_history:
        rows += [*full_rows(source, size, lab), *check_rows(source, size, lab)]
    return rows
