"""Rows of the measurements that need more than a warehouse file: first content of each page in
Chromium (issue 12) and BigQuery's bytes per page load and per backfill (issue 11)."""

from __future__ import annotations

from pathlib import Path

from bench.timing import Row, load_1min

SIZE = 1
"""Both run on a one-season demo (first paint: the console's own demo; bytes: the emulator's)."""


def first_paint_rows(runs: int) -> list[Row]:
    """First real figure of each page on a fresh server (cold) and in a fresh tab (warm), page complete
    on a fresh server, and each page's ratio to the toy page measured in the same run (medians of
    ``runs``); none without Chromium."""
    from bench.first_paint import CHROMIUM, TOY, first_paint

    if not Path(CHROMIUM).exists():
        return []
    load = load_1min()
    figures = first_paint(runs=runs)
    notes = {
        "cold": "a fresh server",
        "warm": "a fresh tab on the running server",
        "cold_complete": "a fresh server: its first script run ended (informational)",
    }
    rows = [
        Row(f"first_paint_{when}_{page}",
            f"{'Page complete' if when.endswith('complete') else 'First real figure'} in Chromium, {page}, "
            f"{when.removesuffix('_complete')} (median of {runs})", SIZE, "s", [seconds[when]], load, notes[when])
        for page, seconds in figures.items()
        for when in notes
    ]  # fmt: skip
    rows += [
        Row(f"first_paint_ratio_{when}_{page}",
            f"First real figure, {page} / toy page, {notes[when]} (same run)", SIZE, "x",
            [seconds[f"{when}_ratio"]], load, f"toy page: {figures[TOY][when]:.2f} s")
        for page, seconds in figures.items()
        if page != TOY
        for when in ("cold", "warm")
    ]  # fmt: skip
    return rows


def bigquery_bytes_rows() -> list[Row]:
    """Bytes processed and billed per Coverage page load and per 31-date backfill, from dry runs on
    the BigQuery emulator (none without it). The emulator reports 0 bytes processed, so billed is
    BigQuery's 10 MB-per-table floor alone; a real project gives real figures."""
    from bench.bigquery_bytes import measure

    load = load_1min()
    figures = measure()
    if figures is None:
        return []
    rows = []
    for key, name in (("page_load", "a Coverage page load"), ("backfill_31_dates", "a 31-date backfill")):
        report = figures[key]
        for measure_name in ("bytes_processed", "bytes_billed"):
            rows.append(
                Row(f"bigquery_{key}_{measure_name}", f"BigQuery {measure_name.replace('_', ' ')}, {name}", SIZE,
                    "MB", [report[measure_name] / 2**20], load,
                    f"{report['statements']} statements, dry runs on {figures['where']}")
            )  # fmt: skip
    return rows


def bigquery_jobs_rows() -> list[Row]:
    """Query jobs and bytes billed per page view (cold, rerun, after a write), per check and per
    31-date backfill, counted from the jobs the client sent to the BigQuery emulator (none without
    it). Billed is BigQuery's 10 MB-per-table floor (the emulator reports 0 bytes processed)."""
    from bench.bigquery_jobs import measure

    load = load_1min()
    works = measure()
    if works is None:
        return []
    rows = []
    for work in works:
        note = f"{work.emulator_jobs} jobs on the emulator, {work.dry_runs} dry runs (free)"
        rows.append(Row(f"bq_{work.key}_jobs", f"BigQuery query jobs, {work.name}", SIZE, "jobs",
                        [work.query_jobs], load, note))  # fmt: skip
        rows.append(Row(f"bq_{work.key}_billed", f"BigQuery bytes billed (floor), {work.name}", SIZE, "MB",
                        [work.bytes_billed / 2**20], load, "10 MB per table each statement references"))  # fmt: skip
    return rows
