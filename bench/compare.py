"""The baselines measured beside the product on the same data, as ratios (baseline / product)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from backfill import coverage
from backfill.launch import run_here
from backfill.request import BackfillRequest
from backfill.seasons import season_start
from backfill.warehouse import connect
from bench import baselines
from bench.product import DECEMBER, Lab
from bench.timing import Row, load_1min, repeat

SEASON = dt.date(2021, 12, 1)
"""A date of the season whose every date the per-date loop replaces (2021-22, the incident's)."""


@dataclass(frozen=True)
class Comparison:
    """A baseline against the product on one warehouse size."""

    name: str
    size: int
    baseline_ms: float
    product_ms: float
    baseline_statements: int | None = None
    product_statements: int | None = None
    note: str = ""
    same_numbers: bool | None = None
    """Whether the baseline found the product's figures (checked where the baseline computes any)."""

    @property
    def ratio(self) -> float:
        return self.baseline_ms / self.product_ms


def monthly_comparison(
    source, size: int, lab: Lab, product_cold: Row, product_first: Row
) -> tuple[list[Row], list[Comparison]]:
    """The team's month-by-month check against the product's coverage as a fresh process finds it
    (cold: the kept snapshot, judged by issue 13) and against its first-ever look (everything measured,
    shown beside it)."""
    settings = lab.settings(source)
    load = load_1min()
    results = []

    def fresh():
        return connect(settings)

    def check(warehouse) -> None:
        results.append(baselines.monthly_by_hand(warehouse, settings))

    seconds = repeat(check, lab.repeats, fresh, lambda warehouse: warehouse.close())
    warehouse = connect(settings)
    first, last = coverage.data_bounds(warehouse)
    daily = coverage.daily_coverage(warehouse, settings, first, last)
    monthly = coverage.monthly_coverage(warehouse, settings, first, last, daily=daily)
    warehouse.close()
    agree = baselines.same_numbers(results[0], monthly, daily, settings)
    same = "yes" if all(agree.values()) else "no"
    detail = ", ".join(
        f"{name.replace('_', ' ')} {'equal' if ok else 'DIFFER'}" for name, ok in agree.items()
    )
    row = Row("baseline_monthly", "Baseline: one query per month per stage (team's SQL + date counts)", size,
              "ms", [1000 * s for s in seconds], load,
              f"{results[0].statements} queries; same numbers: {same} ({detail})")  # fmt: skip
    comparisons = [
        Comparison(
            f"one query per month (by hand) vs the product's coverage queries ({what})",
            size,
            row.median,
            product.median,
            results[0].statements,
            statements,
            f"same numbers: {same}",
            all(agree.values()),
        )
        for what, product, statements in (
            ("cold: a fresh process, the kept snapshot", product_cold, 0),
            ("first-ever: everything measured", product_first, 2),
        )
    ]
    return [row], comparisons


def _loop_once(source, lab: Lab, dates: list[dt.date]) -> tuple[float, int]:
    with lab.copy(source) as (settings, warehouse):
        now = dt.datetime.now(dt.UTC)
        started = time.perf_counter()
        statements = baselines.per_date_loop(warehouse, settings, dates, now)
        return time.perf_counter() - started, statements


def loop_comparison(source, size: int, lab: Lab, product_december: list[Row]) -> tuple[list[Row], Comparison]:
    """The per-date DELETE + INSERT loop over December 2021 against the product's 31-date backfill."""
    load = load_1min()
    dates = coverage.date_span(*DECEMBER)
    runs = [_loop_once(source, lab, dates) for _ in range(lab.repeats)]
    statements = runs[0][1]
    row = Row("baseline_loop_dec", "Baseline: per-date loop, DELETE + INSERT per date per stage, 2021-12", size,
              "ms", [1000 * seconds for seconds, _ in runs], load,
              f"{statements} statements, no gate, no verification")  # fmt: skip
    by_key = {r.key: r for r in product_december}
    comparison = Comparison(
        "per-date loop vs the product's 31-date backfill (2021-12, both stages)",
        size,
        row.median,
        by_key["dec_seconds"].median,
        statements,
        int(by_key["dec_statements"].median),
    )
    return [row], comparison


def season_comparison(source, size: int, lab: Lab) -> tuple[list[Row], Comparison]:
    """Once each: the per-date loop and the product (default batch size) over the 2021-22 season."""
    load = load_1min()
    settings = lab.settings(source)
    warehouse = connect(settings)
    _, last = coverage.data_bounds(warehouse)
    first = warehouse.query(
        "SELECT MIN(game_date) AS first FROM {pgs} WHERE game_date >= @d", {"d": season_start(SEASON)}
    ).iloc[0]["first"]
    warehouse.close()
    dates = coverage.date_span(first, last)
    loop_seconds, loop_statements = _loop_once(source, lab, dates)
    with lab.copy(source) as (copy_settings, copy):
        request = BackfillRequest.build(copy_settings, start=first, end=last)
        issued = copy.statements_issued
        started = time.perf_counter()
        run_here(copy_settings, request, "bench", warehouse=copy, sleep=lambda _: None)
        product_seconds = time.perf_counter() - started
        product_statements = copy.statements_issued - issued
    span = f"{first}..{last}, {len(dates)} dates"
    rows = [
        Row("baseline_loop_season", f"Baseline: per-date loop over the 2021-22 season ({len(dates)} dates)", size,
            "s", [loop_seconds], load, f"{loop_statements} statements"),
        Row("season_product", "Backfill of the 2021-22 season, both stages, default batch size", size, "s",
            [product_seconds], load, f"{product_statements} statements"),
    ]  # fmt: skip
    comparison = Comparison(
        f"per-date loop vs the product over the whole 2021-22 season ({span})",
        size,
        1000 * loop_seconds,
        1000 * product_seconds,
        loop_statements,
        product_statements,
        "one run each",
    )
    return rows, comparison


def full_history_comparison(
    source, size: int, lab: Lab, product_full: Row, most: int | None = None
) -> tuple[list[Row], Comparison]:
    """Once: the per-date loop over every game date of the warehouse (the first ``most`` of them when
    given: the harness's own test) against the product's full backfill with default settings (its
    median). Off days are left out of the loop: that favours it."""
    load = load_1min()
    settings = lab.settings(source)
    warehouse = connect(settings)
    dates = list(warehouse.query("SELECT DISTINCT game_date FROM {pgs} ORDER BY game_date")["game_date"])
    warehouse.close()
    dates = dates[:most] if most is not None else dates
    loop_seconds, loop_statements = _loop_once(source, lab, dates)
    span = "the whole history" if most is None else "the first game dates"
    row = Row("baseline_loop_full", f"Baseline: per-date loop over {span} ({len(dates):,} game dates)",
              size, "s", [loop_seconds], load, f"{loop_statements:,} statements, no gate, no verification")  # fmt: skip
    statements = (
        int(product_full.note.rsplit(";", 1)[-1].split()[0]) if "statements" in product_full.note else None
    )
    comparison = Comparison(
        "per-date loop vs the product's full backfill with default settings (whole history)",
        size,
        1000 * loop_seconds,
        1000 * product_full.median,
        loop_statements,
        statements,
        "one loop run; the product's median",
    )
    return [row], comparison
