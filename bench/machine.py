"""The machine and the code a benchmark ran on, read at run time (nothing here is typed in)."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.timing import PROJECT_ROOT

PRODUCT_PATHS = ("backfill", "ui", "pages", "app.py")


@dataclass(frozen=True)
class Machine:
    cpu_model: str
    cores: int
    memory_gib: float
    python: str
    packages: dict[str, str]
    system: str


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return float("nan")


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def describe() -> Machine:
    return Machine(
        cpu_model=_cpu_model(),
        cores=os.cpu_count() or 0,
        memory_gib=_memory_gib(),
        python=platform.python_version(),
        packages={name: _package(name) for name in ("duckdb", "pandas", "streamlit", "sqlglot")},
        system=f"{platform.system()} {platform.release()}",
    )


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def now() -> dt.datetime:
    return dt.datetime.now().astimezone()


def code_state() -> str:
    """The commit measured, and the product files that differed from it in the checkout."""

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=False)
        return done.stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    # Porcelain lines are "XY path": the status columns may start with a space, so no strip() here.
    changed = [line[3:] for line in git("status", "--porcelain", "--", *PRODUCT_PATHS).splitlines() if line]
    if not changed:
        return f"commit {commit}, product code as committed"
    return f"commit {commit} plus uncommitted changes to {len(changed)} product files ({', '.join(changed)})"
