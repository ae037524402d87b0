"""Batches side by side: the example team pipeline's command jobs at ``max_parallel`` 1 against 4.

Each job spends a fixed time before it writes (``TEAM_JOB_SECONDS``, as a remote warehouse job
would), so the wall-clock ratio shows how much of that time the runner overlaps. The example's
pipeline file is copied with every stage's ``batch_size`` and ``max_parallel`` set, its jobs beside it.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from backfill.demo import create_declared_tables
from backfill.launch import run_here
from backfill.pipeline import load_pipeline
from backfill.request import BackfillRequest
from bench.product import DECEMBER, Lab
from bench.timing import PROJECT_ROOT, Row, load_1min

EXAMPLE = PROJECT_ROOT / "examples" / "team_pipeline"
JOB_SECONDS = 2.0
"""Each job's fixed time: a BigQuery job takes a second or more."""
BATCH = 8
"""Dates per job: December's 31 dates are 4 batches, so 4 at once run them all side by side."""


def variant(folder: Path, max_parallel: int) -> Path:
    """The example pipeline with every stage at ``BATCH`` dates a job and ``max_parallel`` jobs at once."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "jobs").exists():
        shutil.copytree(EXAMPLE / "jobs", folder / "jobs")
    text = (EXAMPLE / "pipeline.toml").read_text()
    text = re.sub(r"batch_size = \d+", f"batch_size = {BATCH}", text)
    text = re.sub(r"max_parallel = \d+", f"max_parallel = {max_parallel}", text)
    path = folder / "pipeline.toml"
    path.write_text(text)
    return path


def once(source: Path, lab: Lab, max_parallel: int, job_seconds: float = JOB_SECONDS) -> tuple[float, str]:
    """One December backfill of the three stages; (seconds, status)."""
    pipeline = load_pipeline(variant(lab.scratch / f"parallel-{max_parallel}", max_parallel), environ={})
    with lab.copy(source) as (settings, warehouse):
        settings = settings.replace(pipeline=pipeline)
        warehouse.settings = settings
        create_declared_tables(warehouse, settings)
        warehouse.close()
        request = BackfillRequest.build(settings, start=DECEMBER[0], end=DECEMBER[1])
        saved = os.environ.get("TEAM_JOB_SECONDS")
        os.environ["TEAM_JOB_SECONDS"] = str(job_seconds)
        try:
            started = time.perf_counter()
            result = run_here(settings, request, "bench", warehouse=warehouse, sleep=lambda _: None)
            return time.perf_counter() - started, result.status
        finally:
            if saved is None:
                os.environ.pop("TEAM_JOB_SECONDS", None)
            else:
                os.environ["TEAM_JOB_SECONDS"] = saved


def parallel_rows(source: Path, size: int, lab: Lab, job_seconds: float = JOB_SECONDS) -> list[Row]:
    """max_parallel 1 and 4 on the same work, and their ratio (target: at least 3x)."""
    load = load_1min()
    repeats = max(1, min(lab.repeats, 3))
    serial = [once(source, lab, 1, job_seconds) for _ in range(repeats)]
    side_by_side = [once(source, lab, 4, job_seconds) for _ in range(repeats)]
    note = f"3 stages, {BATCH} dates a job, each job {job_seconds:g} s before it writes"
    rows = [
        Row("parallel_1", "Team pipeline, 31 dates, max_parallel 1 (command jobs)", size, "s",
            [s for s, _ in serial], load, f"{note}; status {serial[-1][1]}"),
        Row("parallel_4", "Team pipeline, 31 dates, max_parallel 4 (command jobs)", size, "s",
            [s for s, _ in side_by_side], load, f"{note}; status {side_by_side[-1][1]}"),
    ]  # fmt: skip
    ratios = [a / b for a, b in zip(sorted(s for s, _ in serial), sorted(s for s, _ in side_by_side))]
    rows.append(Row("parallel_ratio", "Wall-clock ratio, max_parallel 1 / 4", size, "x", ratios, load,
                    "sorted samples paired"))  # fmt: skip
    return rows
