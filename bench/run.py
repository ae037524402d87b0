"""The benchmark of SPEC 5: build demo warehouses, measure the product and two baselines, write
BENCHMARKS.md. ``make bench`` runs it; ``python -m bench --help`` lists the knobs.

Every figure printed or written is measured in the run that prints it.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from backfill.config import Settings
from backfill.demo import build_demo_file
from bench import compare, extras, machine, parallel, product, report, whole_process
from bench.timing import PROJECT_ROOT, Row, load_1min


@dataclass(frozen=True)
class Config:
    """What to measure and how often."""

    sizes: tuple[int, ...] = (5, 20, 50)
    repeats: int = 5
    budget_s: float = 60.0
    large_batch: int = 10_000
    job_seconds: float = 2.0
    """Each command job's fixed time in the max_parallel comparison."""
    baseline_sizes: tuple[int, ...] = (5, 20)
    """Sizes the baselines run at (the month-by-month check and the loops take minutes beyond)."""
    scratch: Path = PROJECT_ROOT / "artifacts" / "bench"
    output: Path | None = PROJECT_ROOT / "BENCHMARKS.md"
    seed: int = 7
    season_loop: bool = True
    loop_dates: int | None = None
    """At most this many game dates in the whole-history loop (None: all; the tests take a few)."""
    profiles: bool = True
    extras: bool = True
    """First paint in Chromium and BigQuery bytes on the emulator (each skipped where missing)."""


def say(text: str) -> None:
    print(text, flush=True)


def build(size: int, config: Config) -> tuple[Path, Row]:
    """A demo warehouse of ``size`` seasons in the scratch directory, built now."""
    path = config.scratch / f"demo-{size}.duckdb"
    load = load_1min()
    started = time.perf_counter()
    summary = build_demo_file(path, Settings(warehouse=str(path)), seasons=size, seed=config.seed)
    seconds = time.perf_counter() - started
    note = (
        f"{summary.player_game_rows:,} player-games, {summary.games:,} games, "
        f"{summary.first_date}..{summary.last_date}"
    )
    return path, Row("build", "Build the demo warehouse", size, "s", [seconds], load, note)


def run(config: Config) -> report.Results:
    """Measure everything for every size; returns the results (the caller writes them)."""
    config.scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = report.Results(
        machine=machine.describe(),
        code=machine.code_state(),
        started=machine.now(),
        load_start=machine.load_average(),
    )
    lab = product.Lab(
        config.scratch, repeats=config.repeats, budget_s=config.budget_s, profiles=results.profiles
    )
    say(f"bench: sizes {config.sizes}, {config.repeats} runs each, load {results.load_start}")
    say(report.ROW_HEADER)
    sources: dict[int, Path] = {}

    def add(rows: list[Row]) -> list[Row]:
        for row in rows:
            results.rows.append(row)
            say(report.row_line(row))
        return rows

    for size in config.sizes:
        source, built = build(size, config)
        sources[size] = source
        add([built])
        coverage_rows = add(product.coverage_rows(source, size, lab))
        add(product.cli_coverage_rows(source, size, lab))
        december = add(product.december_rows(source, size, lab))
        full = add(product.full_backfill_rows(source, size, lab, None, limited=True))
        if size in config.baseline_sizes:
            add(product.full_backfill_rows(source, size, lab, config.large_batch, limited=True))
        for what in product.MEMORY_KINDS:
            add(product.memory_rows(source, size, lab, what))
        if size in config.baseline_sizes:
            # Judged against cold coverage (issue 13); the first-ever look, which measures everything
            # as the baseline does, is compared beside it.
            cold, first = (
                next(row for row in coverage_rows if row.key == key)
                for key in ("coverage_cold", "coverage_first")
            )
            rows, comparisons = compare.monthly_comparison(source, size, lab, cold, first)
            add(rows)
            results.comparisons.extend(comparisons)
            rows, comparison = compare.loop_comparison(source, size, lab, december)
            add(rows)
            results.comparisons.append(comparison)
        whole = add(whole_process_rows(source, size, lab, config))
        if config.season_loop and size == max(config.baseline_sizes):
            rows, comparison = compare.full_history_comparison(source, size, lab, full[0], config.loop_dates)
            add(rows)
            results.comparisons.append(comparison)
            add(whole_loop_ratio(rows, whole))
        if size == min(config.sizes):
            add(parallel.parallel_rows(source, size, lab, config.job_seconds))
        add(product.page_rows(source, size, lab))

    if config.extras:
        add(extras.first_paint_rows(config.repeats))
        add(extras.bigquery_bytes_rows())
        add(extras.bigquery_jobs_rows())
    days = {row.size: row.median for row in results.rows if row.key == "game_dates"}
    add(product.paired_growth_rows(sources, lab, days))
    add(report.ratio_rows(results.comparisons))
    add(report.growth_rows(results.rows))
    say("")
    say(report.comparisons_table(results.comparisons))
    if config.profiles:
        profile_missed(results, sources, lab, config)
    results.load_end = machine.load_average()
    results.code_end = machine.code_state()
    results.seconds = time.perf_counter() - started
    return results


def whole_process_rows(source: Path, size: int, lab: product.Lab, config: Config) -> list[Row]:
    """Issue 26's rows: commands as new processes; start-up once, the whole history at the size the
    loop baseline runs at."""
    return whole_process.whole_process_rows(
        source, size, lab, startup=size == min(config.sizes), full_history=size == max(config.baseline_sizes)
    )


def whole_loop_ratio(loop_rows: list[Row], whole: list[Row]) -> list[Row]:
    """The per-date loop against the whole-process first run of the whole history."""
    loop = next(row for row in loop_rows if row.key == "baseline_loop_full")
    first = next(row for row in whole if row.key == "wp_full_first")
    return [whole_process.loop_ratio_row(loop, first)]


def run_whole_process(config: Config) -> report.Results:
    """Only issue 26's rows (``--only whole-process``): the CLI's coverage, the whole-process rows,
    and the per-date loop they are compared with; no report is written."""
    config.scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = report.Results(
        machine=machine.describe(), code=machine.code_state(), started=machine.now(),
        load_start=machine.load_average(),
    )  # fmt: skip
    lab = product.Lab(config.scratch, repeats=config.repeats, budget_s=config.budget_s)
    say(
        f"bench (whole process only): sizes {config.sizes}, {config.repeats} runs each, load {results.load_start}"
    )
    say(report.ROW_HEADER)
    for size in config.sizes:
        source, built = build(size, config)
        for row in [
            built,
            *product.cli_coverage_rows(source, size, lab),
            *whole_process_rows(source, size, lab, config),
        ]:
            results.rows.append(row)
            say(report.row_line(row))
        if config.season_loop and size == max(config.baseline_sizes):
            first = next(row for row in results.rows if row.key == "wp_full_first" and row.size == size)
            loop_rows, _ = compare.full_history_comparison(source, size, lab, first, config.loop_dates)
            for row in [*loop_rows, *whole_loop_ratio(loop_rows, [first])]:
                results.rows.append(row)
                say(report.row_line(row))
    results.load_end = machine.load_average()
    results.seconds = time.perf_counter() - started
    return results


def profile_missed(
    results: report.Results, sources: dict[int, Path], lab: product.Lab, config: Config
) -> None:
    """One extra, sampled run of each measurement that missed its target (pages were sampled already)."""
    for verdict in report.verdicts(results.rows):
        key, size = verdict.row.key, verdict.row.size
        sampled = [p for p in results.profiles.get((key, size), []) if p.hotspots]
        if verdict.met or sampled or size not in sources:
            continue  # met, profiled already, or measured on another warehouse (the emulator's demo)
        source = sources[size]
        if key == "coverage_cold":
            found = product.profile_coverage_cold(source, lab, size)
        elif key == "coverage_warm":
            found = product.profile_coverage_warm(source, lab, size)
        elif key == f"full_{config.large_batch}":
            found = product.profile_backfill(source, lab, config.large_batch, size)
        elif key == "full_default":
            found = product.profile_backfill(source, lab, None, size)
        elif key == "growth_full_default":
            # Both sizes of the pair: where the larger one spends more than its share.
            smaller = max(s for s in sources if s < size)
            for each in (smaller, size):
                results.profiles.setdefault((key, size), []).append(
                    product.profile_backfill(sources[each], lab, None, each)
                )
            found = None
        else:
            continue
        if found is not None:
            results.profiles.setdefault((key, size), []).append(found)
        for shown in results.profiles[(key, size)]:
            say("")
            say(report.profile_text(shown))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="SPEC 5 benchmark; writes BENCHMARKS.md"
    )
    parser.add_argument("--sizes", default="5,20,50", help="seasons of each demo warehouse (default 5,20,50)")
    parser.add_argument("--repeats", type=int, default=5, help="runs per measurement (default 5)")
    parser.add_argument(
        "--budget", type=float, default=60.0,
        help="seconds after which an expensive measurement (full backfills, memory) stops repeating",
    )  # fmt: skip
    parser.add_argument("--scratch", type=Path, default=Config.scratch, help="where warehouses are built")
    parser.add_argument(
        "--output", type=Path, default=Config.output, help="the report (default BENCHMARKS.md)"
    )
    parser.add_argument("--no-output", action="store_true", help="print only; write no report")
    parser.add_argument(
        "--no-season-loop", action="store_true", help="skip the per-date loop over the whole history"
    )
    parser.add_argument("--no-profiles", action="store_true", help="skip the profiles of missed targets")
    parser.add_argument(
        "--no-extras",
        action="store_true",
        help="skip first paint in Chromium and BigQuery bytes on the emulator",
    )
    parser.add_argument(
        "--only",
        choices=["whole-process", "bigquery"],
        help="measure only one section and print it (whole-process: issue 26's commands as new processes, "
        "with the CLI's coverage and the per-date loop; bigquery: query jobs and bytes billed on the BigQuery "
        "emulator; no report is written)",
    )
    args = parser.parse_args(argv)
    config = Config(
        sizes=tuple(int(size) for size in args.sizes.split(",")),
        repeats=args.repeats,
        budget_s=args.budget,
        scratch=args.scratch,
        output=None if args.no_output else args.output,
        season_loop=not args.no_season_loop,
        profiles=not args.no_profiles,
        extras=not args.no_extras,
    )
    if args.only == "bigquery":
        rows = extras.bigquery_jobs_rows()
        say(report.BIGQUERY_JOBS_NOTE)
        say("")
        say(report.bigquery_jobs_table(rows))
        return 0
    if args.only == "whole-process":
        results = run_whole_process(config)
        say("")
        say(report.targets_table(report.verdicts(results.rows)))
        say(f"\nload average at the end: {results.load_end}; {results.seconds:.0f} s in all")
        return 0
    results = run(config)
    say("")
    say(report.targets_table(report.verdicts(results.rows)))
    say(f"\nload average at the end: {results.load_end}; {results.seconds:.0f} s in all")
    if config.output:
        config.output.write_text(report.markdown(results))
        say(f"wrote {config.output}")
    return 0
