"""What the product does, measured: coverage queries, backfills, statements, memory, page reruns.

Every function takes one demo warehouse file (never written: writes go to fresh copies) and the
benchmark's :class:`Lab` (scratch directory, settings, repeats), and returns table rows.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from backfill import coverage
from backfill.config import Settings
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.launch import run_here
from backfill.request import BackfillRequest
from backfill.warehouse import Warehouse, connect
from backfill.warehouse import sql as sqlmod
from bench.timing import PROJECT_ROOT, Profile, Row, StatementTimer, load_1min, profile, repeat

DECEMBER = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))
"""The 31-date backfill of SPEC 5: December 2021, the team's incident month, both stages."""


@dataclass
class Lab:
    """Where and how often to measure; hands out fresh warehouse copies and private ledgers."""

    scratch: Path
    repeats: int = 5
    budget_s: float = 60.0
    """Expensive measurements stop repeating once they have used this much time (at least one run)."""
    profiles: dict = field(default_factory=dict)
    """Profiles taken along the way, by (row key, size); the report shows those of missed targets."""

    def settings(self, warehouse: Path) -> Settings:
        """Defaults, except: whole-warehouse ranges allowed, a private ledger, no retry sleeps, and a
        new folder for the caches kept between processes (coverage snapshots, translated SQL), so
        nothing an earlier measurement kept is found."""
        tag = uuid.uuid4().hex[:8]
        ledger = self.scratch / "runs" / f"ledger-{tag}.sqlite"
        return Settings(
            warehouse=str(warehouse), ledger=str(ledger), max_range_days=100_000, retry_delays=(0.0, 0.0, 0.0),
            cache_dir=str(self.scratch / "caches" / tag),
        )  # fmt: skip

    @contextlib.contextmanager
    def copy(self, source: Path) -> Iterator[tuple[Settings, Warehouse]]:
        """A fresh copy of a warehouse file with its own ledger; both deleted afterwards."""
        runs = self.scratch / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        target = runs / f"{source.stem}-{uuid.uuid4().hex[:8]}.duckdb"
        shutil.copy(source, target)
        settings = self.settings(target)
        warehouse = connect(settings)
        try:
            yield settings, warehouse
        finally:
            warehouse.close()
            for path in (target, Path(f"{target}.wal"), *_sqlite_files(settings.ledger)):
                path.unlink(missing_ok=True)

    def within_budget(self, fn: Callable[[], float]) -> list[float]:
        """Run ``fn`` (which returns a sample) up to ``repeats`` times, stopping early once the next run
        would take the total past ``budget_s``; always at least once."""
        samples, spent = [], 0.0
        for _ in range(self.repeats):
            started = time.perf_counter()
            samples.append(fn())
            took = time.perf_counter() - started
            spent += took
            if spent + took > self.budget_s:
                break
        return samples


def _sqlite_files(path: str) -> list[Path]:
    return [Path(path), Path(f"{path}-wal"), Path(f"{path}-shm")]


def _forget_translations() -> None:
    """Drop the cached GoogleSQL-to-DuckDB translations, as a fresh process starts without them."""
    sqlmod.forget_translations()


def _ms(seconds: list[float]) -> list[float]:
    return [1000 * s for s in seconds]


# -- coverage ---------------------------------------------------------------------------------


def full_coverage(warehouse: Warehouse, settings: Settings, first: dt.date, last: dt.date) -> None:
    """A full measurement, whole range: daily, then monthly from it (no snapshot)."""
    daily = coverage.daily_coverage(warehouse, settings, first, last)
    coverage.monthly_coverage(warehouse, settings, first, last, daily=daily)


def fresh_process_coverage(warehouse: Warehouse, settings: Settings, first: dt.date, last: dt.date) -> int:
    """What a fresh process does by default (the CLI, a console server's first page): load the kept
    snapshot (if any), bring it up to date and answer the whole range; returns the dates measured."""
    snapshot = CoverageSnapshot.persisted(warehouse, settings)
    snapshot.coverage(first, last)
    return snapshot.dates_measured


def coverage_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """Coverage page queries: first-ever (no kept snapshot: everything measured), cold (a fresh
    process finding the kept snapshot), warm (snapshot in memory, no change) and after a 31-date
    backfill (snapshot re-measures only changed dates)."""
    settings = lab.settings(source)
    probe = connect(settings)
    first, last = coverage.data_bounds(probe)
    probe.close()

    first_ever = Row(
        "coverage_first", "Coverage queries, first-ever (fresh process, nothing kept yet)", size, "ms"
    )
    first_ever.load = load_1min()
    kept = lab.scratch / "caches" / f"kept-{uuid.uuid4().hex[:8]}"
    measured: list[int] = []

    def first_look() -> float:
        # A new cache folder each run: no kept snapshot, no kept translation.
        each = settings.replace(cache_dir=str(lab.scratch / "caches" / uuid.uuid4().hex[:8]))
        _forget_translations()
        warehouse = connect(each)
        started = time.perf_counter()
        measured.append(fresh_process_coverage(warehouse, each, first, last))
        took = time.perf_counter() - started
        warehouse.close()
        return 1000 * took

    first_ever.samples = [first_look() for _ in range(lab.repeats)]
    first_ever.note = (
        f"new adapter, no kept snapshot or translation (sqlglot already imported); dates measured "
        f"{sorted(set(measured))}; includes saving the snapshot"
    )

    # The kept snapshot and translations a fresh process finds: left by one first look, then brought
    # up to date once the file's change stamp has settled (as any later process would).
    kept_settings = settings.replace(cache_dir=str(kept))
    for _ in range(2):
        _forget_translations()
        warehouse = connect(kept_settings)
        fresh_process_coverage(warehouse, kept_settings, first, last)
        warehouse.close()
        _wait_until_settled(kept_settings)

    cold = Row(
        "coverage_cold", "Coverage queries, cold (fresh process, kept snapshot, file unchanged)", size, "ms"
    )
    cold.load = load_1min()
    cold_measured: list[int] = []
    statements: list[int] = []

    def open_fresh():
        _forget_translations()
        return connect(kept_settings)

    def look(warehouse: Warehouse) -> None:
        cold_measured.append(fresh_process_coverage(warehouse, kept_settings, first, last))
        statements.append(warehouse.statements_issued)

    cold.samples = _ms(repeat(look, lab.repeats, open_fresh, lambda wh: wh.close()))
    cold.note = (
        f"new adapter and snapshot loaded from disk per run; dates re-measured {sorted(set(cold_measured))}, "
        f"statements {sorted(set(statements))}"
    )

    touched = Row("coverage_cold_touched", "Coverage queries, cold, warehouse file touched since (fingerprint scan)",
                  size, "ms")  # fmt: skip
    touched.load = load_1min()
    touched_measured: list[int] = []
    with lab.copy(source) as (copy_settings, copy):
        copy.close()
        copy_settings = copy_settings.replace(cache_dir=str(kept))
        warehouse = connect(copy_settings)
        fresh_process_coverage(warehouse, copy_settings, first, last)  # the copy's own kept snapshot
        warehouse.close()

        def touch_and_open():
            os.utime(copy_settings.warehouse)  # a write's footprint without a change of data
            _forget_translations()
            return connect(copy_settings)

        def touched_look(warehouse: Warehouse) -> None:
            touched_measured.append(fresh_process_coverage(warehouse, copy_settings, first, last))

        touched.samples = _ms(repeat(touched_look, lab.repeats, touch_and_open, lambda wh: wh.close()))
    touched.note = f"fingerprint scan finds no change; dates re-measured {sorted(set(touched_measured))}"

    warm = Row("coverage_warm", "Coverage queries, warm (CoverageSnapshot, nothing changed)", size, "ms")
    warm.load = load_1min()
    warehouse = connect(settings)
    snapshot = CoverageSnapshot(warehouse, settings)
    snapshot.coverage(first, last)
    measured = snapshot.dates_measured
    warm.samples = _ms(repeat(lambda _: snapshot.coverage(first, last), lab.repeats))
    warm.note = f"dates re-measured on warm calls: {snapshot.dates_measured - measured}"
    warehouse.close()

    after = Row(
        "coverage_after_31", "Coverage queries, after a 31-date backfill (CoverageSnapshot)", size, "ms"
    )
    after.load = load_1min()
    remeasured = []

    def after_backfill() -> float:
        with lab.copy(source) as (copy_settings, copy):
            snap = CoverageSnapshot(copy, copy_settings)
            snap.coverage(first, last)
            before = snap.dates_measured
            request = BackfillRequest.build(copy_settings, start=DECEMBER[0], end=DECEMBER[1])
            run_here(copy_settings, request, "bench", warehouse=copy, sleep=lambda _: None)
            started = time.perf_counter()
            snap.coverage(first, last)
            took = time.perf_counter() - started
            remeasured.append(snap.dates_measured - before)
            return 1000 * took

    after.samples = [after_backfill() for _ in range(lab.repeats)]
    after.note = f"dates re-measured: {sorted(set(remeasured))}"

    # The runner measures each batch with daily_counts; its cost for the same 31 dates, per warehouse size,
    # shows whether a batch's measurement grows with the tables rather than with the batch.
    batch = Row("dec_measure", "daily_counts of the 31 dates of 2021-12 (a batch's measurement)", size, "ms")
    batch.load = load_1min()
    warehouse = connect(settings)
    coverage.daily_counts(warehouse, settings, *DECEMBER)
    batch.samples = _ms(repeat(lambda _: coverage.daily_counts(warehouse, settings, *DECEMBER), lab.repeats))
    warehouse.close()
    batch.note = "one statement; open database, translation cached"

    days = Row(
        "game_dates", "Date range measured (days)", size, "days", [float((last - first).days + 1)], cold.load
    )
    return [first_ever, cold, touched, warm, after, batch, days]


def _wait_until_settled(settings: Settings, deadline_s: float = 30.0) -> None:
    """Poll until the warehouse file's change stamp can vouch for it (its last change is old enough)."""
    warehouse = connect(settings)
    deadline = time.monotonic() + deadline_s
    while warehouse.change_stamp() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    warehouse.close()


# -- backfills --------------------------------------------------------------------------------


@dataclass
class BackfillSample:
    seconds: float
    sql_seconds: float
    statements: int
    counted: int
    status: str
    counts: dict
    statements_by_label: dict


def backfill_once(
    source: Path, lab: Lab, start: dt.date | None, end: dt.date | None, batch_size: int | None = None
) -> BackfillSample:
    """One backfill of both stages on a fresh copy (whole warehouse when start and end are None)."""
    with lab.copy(source) as (settings, warehouse):
        if start is None or end is None:
            start, end = coverage.data_bounds(warehouse)
        timer = StatementTimer(warehouse)
        issued = warehouse.statements_issued
        request = BackfillRequest.build(settings, start=start, end=end, batch_size=batch_size)
        started = time.perf_counter()
        result = run_here(settings, request, "bench", warehouse=warehouse, sleep=lambda _: None)
        seconds = time.perf_counter() - started
        return BackfillSample(
            seconds, timer.seconds, result.statements, warehouse.statements_issued - issued, result.status,
            result.counts, timer.by_label(),
        )  # fmt: skip


def december_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """The 31-date backfill: its time and the statements it issues (RunResult and adapter counts)."""
    load = load_1min()
    samples = [backfill_once(source, lab, *DECEMBER) for _ in range(lab.repeats)]
    outcome = f"status {samples[-1].status}, items {samples[-1].counts}"
    return [
        Row("dec_seconds", "31-date backfill (2021-12), both stages", size, "ms",
            [1000 * s.seconds for s in samples], load, outcome),
        Row("dec_statements", "31-date backfill: statements (RunResult.statements)", size, "statements",
            [float(s.statements) for s in samples], load,
            f"adapter counted {sorted({s.counted for s in samples})}"),
    ]  # fmt: skip


def _batch_key(batch_size: int | None) -> str:
    return "default" if batch_size is None else str(batch_size)


def _batch_text(batch_size: int | None) -> str:
    return (
        "default settings (batches sized by the work)" if batch_size is None else f"batch size {batch_size}"
    )


def full_backfill_rows(source: Path, size: int, lab: Lab, batch_size: int | None, limited: bool) -> list[Row]:
    """A backfill of every date of the warehouse, both stages, at one batch size (None: the default)."""
    load = load_1min()
    samples: list[BackfillSample] = []

    def once() -> float:
        samples.append(backfill_once(source, lab, None, None, batch_size))
        return samples[-1].seconds

    seconds = lab.within_budget(once) if limited else [once() for _ in range(lab.repeats)]
    last = samples[-1]
    key = f"full_{_batch_key(batch_size)}"
    lab.profiles[(key, size)] = [
        Profile(f"Full backfill, {_batch_text(batch_size)}, {size} seasons: statements of the last measured run",
                last.seconds, [], last.statements_by_label)
    ]  # fmt: skip
    sql = sorted(s.sql_seconds for s in samples)[len(samples) // 2]
    return [
        Row(key, f"Full backfill, all stages, {_batch_text(batch_size)}", size, "s", seconds, load,
            f"status {last.status}; SQL statements {sql:.2f} s of it (median); {last.statements} statements"),
    ]  # fmt: skip


def paired_growth_rows(sources: dict[int, Path], lab: Lab, days: dict[int, float]) -> list[Row]:
    """Growth of the default full backfill from interleaved pairs: for each two sizes next to each
    other, a run at the smaller, then one at the larger, ``repeats`` times; each pair's ratio scaled
    to 2.5x more data. A slow spell of a shared machine (runs minutes apart differed by a fifth here)
    then slows both runs of a pair instead of one side of the comparison. ``days``: each size's date
    range (a run has an item per date and stage), whose growth the note gives beside."""
    import math
    import statistics

    from bench.report import GROWN, GROWTH_PER_STEP

    found = []
    sizes = sorted(sources)
    for small, large in zip(sizes, sizes[1:]):
        load = load_1min()
        power = math.log(GROWTH_PER_STEP) / math.log(large / small)
        pairs = [
            (backfill_once(sources[small], lab, None, None).seconds, backfill_once(sources[large], lab, None, None).seconds)
            for _ in range(lab.repeats)
        ]  # fmt: skip
        factors = [(b / a) ** power for a, b in pairs]
        a, b = (statistics.median(side) for side in zip(*pairs))
        dates = days[large] / days[small]
        per_dates = statistics.median(
            (y / x) ** (math.log(GROWTH_PER_STEP) / math.log(dates)) for x, y in pairs
        )
        found.append(
            Row("growth_full_default",
                f"Growth of {GROWN['full_default']}, {small} to {large} seasons, per 2.5x data (interleaved pairs)",
                large, "x per 2.5x", factors, load,
                f"{len(pairs)} pairs, {small} then {large} seasons; medians {a:.2f} s and {b:.2f} s; linear is 2.5. "
                f"The date range (items) grew {dates:.3f}x; per 2.5x more dates: {per_dates:.2f}")
        )  # fmt: skip
    return found


MEMORY_KINDS = {
    "full": "Full backfill, default settings",
    "december": "31-date backfill (2021-12), default settings",
    "coverage": "Coverage queries, full measurement (as first-ever)",
}


def memory_rows(source: Path, size: int, lab: Lab, what: str = "full") -> list[Row]:
    """Peak RSS of one kind of work (default settings), each sample in a process of its own."""
    from bench.memory import measure_in_subprocess

    runs = lab.scratch / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    load = load_1min()
    reports: list[dict] = []

    def rss() -> float:
        reports.append(measure_in_subprocess(source, runs, None, "rss", what))
        return reports[-1]["peak_rss_mb"]

    peaks = dataclasses.replace(lab, repeats=min(lab.repeats, 3), budget_s=lab.budget_s / 2).within_budget(
        rss
    )
    since = "since the work started" if all(r["peak_is_the_backfills"] for r in reports) else "of the process"
    start = sorted(r["rss_at_start_mb"] for r in reports)[len(reports) // 2]
    return [
        Row(f"mem_{what}", f"{MEMORY_KINDS[what]}: peak RSS (VmHWM {since})", size, "MB", peaks, load,
            f"whole process (interpreter, libraries, DuckDB native memory); {start:.0f} MB before the work"),
    ]  # fmt: skip


# -- page reruns ------------------------------------------------------------------------------


@contextlib.contextmanager
def console_environment(warehouse: Path, scratch: Path) -> Iterator[None]:
    """Environment of a console on one warehouse: no developer settings, caches that stay warm."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("BACKFILL_")}
    for name in saved:
        del os.environ[name]
    os.environ.update(
        BACKFILL_WAREHOUSE=str(warehouse),
        BACKFILL_LEDGER=str(scratch / "console-ledger.sqlite"),
        BACKFILL_CONFIG=os.devnull,
        # Nothing kept from an earlier benchmark: the first run of a page measures everything.
        BACKFILL_CACHE_DIR=str(scratch / "caches" / uuid.uuid4().hex[:8]),
        # Reruns must find the caches warm, not cross a cache_ttl_s boundary mid-measurement.
        BACKFILL_CACHE_TTL_S="3600",
    )
    try:
        yield
    finally:
        for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
            del os.environ[name]
        os.environ.update(saved)


def page_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """Overview and Coverage pages through AppTest: the first run, then reruns with warm caches."""
    from streamlit.testing.v1 import AppTest

    rows = []
    load = load_1min()
    with console_environment(source, lab.scratch):
        app = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=120)
        for page in ("pages/overview.py", "pages/coverage.py"):
            name = Path(page).stem.capitalize()
            started = time.perf_counter()
            if page == "pages/overview.py":
                app.run()
            else:
                app.switch_page(page).run()
            first = time.perf_counter() - started
            _check(app, page)
            samples = []
            for _ in range(lab.repeats):
                started = time.perf_counter()
                app.run()
                samples.append(1000 * (time.perf_counter() - started))
                _check(app, page)
            rows.append(Row(f"page_first_{name.lower()}", f"{name} page, first run (cold caches)", size, "ms",
                            [1000 * first], load, "includes the queries; informational"))  # fmt: skip
            rows.append(Row(f"page_rerun_{name.lower()}", f"{name} page rerun (AppTest, caches warm)", size, "ms",
                            samples, load))  # fmt: skip
            wall, spots = profile(app.run, threads="ScriptRunner")
            _check(app, page)
            lab.profiles[(f"page_rerun_{name.lower()}", size)] = [
                Profile(f"{name} page rerun, {size} seasons", wall, spots)
            ]
    return rows


def _check(app, page: str) -> None:
    if app.exception:
        raise RuntimeError(f"{page} raised: {app.exception[0].value}")


# -- profiles (one extra run of a measurement, sampled) ---------------------------------------


def profile_coverage_cold(source: Path, lab: Lab, size: int):
    """Where a cold coverage look (a fresh process finding the kept snapshot) spends its time."""
    settings = lab.settings(source)
    for _ in range(2):  # keep a snapshot, then bring it up to date once the file's stamp has settled
        warehouse = connect(settings)
        first, last = coverage.data_bounds(warehouse)
        fresh_process_coverage(warehouse, settings, first, last)
        warehouse.close()
        _wait_until_settled(settings)
    _forget_translations()
    warehouse = connect(settings)
    timer = StatementTimer(warehouse)
    wall, spots = profile(lambda: fresh_process_coverage(warehouse, settings, first, last))
    warehouse.close()
    return Profile(f"Coverage queries, cold (kept snapshot), {size} seasons", wall, spots, timer.by_label(),
                   "A statement's time includes opening the database and its SQL translation when first seen.")  # fmt: skip


def profile_coverage_warm(source: Path, lab: Lab, size: int):
    """Where a warm snapshot call spends its time."""
    settings = lab.settings(source)
    warehouse = connect(settings)
    first, last = coverage.data_bounds(warehouse)
    snapshot = CoverageSnapshot(warehouse, settings)
    snapshot.coverage(first, last)
    timer = StatementTimer(warehouse)
    wall, spots = profile(lambda: snapshot.coverage(first, last))
    warehouse.close()
    return Profile(
        f"Coverage queries, warm (CoverageSnapshot), {size} seasons", wall, spots, timer.by_label()
    )


def profile_backfill(source: Path, lab: Lab, batch_size: int | None, size: int):
    """Where a full backfill spends its time."""
    with lab.copy(source) as (settings, warehouse):
        first, last = coverage.data_bounds(warehouse)
        timer = StatementTimer(warehouse)
        request = BackfillRequest.build(settings, start=first, end=last, batch_size=batch_size)
        wall, spots = profile(
            lambda: run_here(settings, request, "bench", warehouse=warehouse, sleep=lambda _: None)
        )
    return Profile(f"Full backfill, {_batch_text(batch_size)}, {size} seasons", wall, spots, timer.by_label())


def cli_coverage_rows(source: Path, size: int, lab: Lab) -> list[Row]:
    """``python -m backfill coverage --by month`` over every date, as a whole new process each time."""
    import subprocess
    import sys

    settings = lab.settings(source)
    warehouse = connect(settings)
    first, last = coverage.data_bounds(warehouse)
    warehouse.close()
    env = {name: value for name, value in os.environ.items() if not name.startswith("BACKFILL_")}
    env |= {"BACKFILL_WAREHOUSE": str(source), "BACKFILL_CONFIG": os.devnull, "BACKFILL_MAX_RANGE_DAYS": "100000",
            "BACKFILL_LEDGER": settings.ledger}  # fmt: skip
    argv = [
        sys.executable,
        "-m",
        "backfill",
        "coverage",
        "--by",
        "month",
        "--start",
        str(first),
        "--end",
        str(last),
    ]

    def once(cache: str) -> float:
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=PROJECT_ROOT, env=env | {"BACKFILL_CACHE_DIR": cache},
                              capture_output=True, text=True, check=False)  # fmt: skip
        took = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"coverage CLI failed ({done.returncode}): {done.stderr.strip()[-1000:]}")
        return took

    # First-ever: a new cache folder each run (no kept snapshot, no kept translation).
    first_load = load_1min()
    first_ever = [
        once(str(lab.scratch / "caches" / uuid.uuid4().hex[:8])) for _ in range(min(lab.repeats, 3))
    ]
    # Cold, the usual case: the kept snapshot and translations a previous command left, file unchanged.
    kept = settings.cache_dir
    once(kept)
    _wait_until_settled(settings)
    once(kept)
    load = load_1min()
    samples = [once(kept) for _ in range(lab.repeats)]
    imports = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import backfill.cli.main"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    total_us = 0
    for line in imports.stderr.splitlines():
        parts = line.split("|")
        if (
            len(parts) == 3
            and parts[2].strip()
            and not parts[2].startswith("  ")
            and parts[1].strip().isdigit()
        ):
            total_us += int(parts[1].strip())
    return [
        Row("cli_coverage_first", "`python -m backfill coverage --by month`, whole process, first-ever (nothing kept)",
            size, "s", first_ever, first_load, "a new cache folder each run: every date measured, every statement translated"),
        Row("cli_coverage", "`python -m backfill coverage --by month`, whole history, whole process", size, "s",
            samples, load, f"kept snapshot and translations, file unchanged since; importing backfill.cli.main alone: "
            f"{total_us / 1e6:.2f} s"),
    ]  # fmt: skip
