"""The benchmark harness on a tiny configuration: every row measured, baselines agreeing with the
product. No timing is asserted here; SPEC 5's speed targets are judged by `make bench`'s printout."""

from __future__ import annotations

import datetime as dt

import pytest

from backfill import coverage
from backfill.config import Settings
from bench import baselines, report
from bench.run import Config, run

EVERY_ROW = (
    "build",
    "coverage_first",
    "coverage_cold",
    "coverage_cold_touched",
    "coverage_warm",
    "coverage_after_31",
    "dec_measure",
    "game_dates",
    "cli_coverage_first",
    "cli_coverage",
    "dec_seconds",
    "dec_statements",
    "full_default",
    "full_10000",
    "mem_full",
    "mem_december",
    "mem_coverage",
    "baseline_monthly",
    "baseline_loop_dec",
    "baseline_loop_full",
    "parallel_1",
    "parallel_4",
    "parallel_ratio",
    "page_first_overview",
    "page_rerun_overview",
    "page_first_coverage",
    "page_rerun_coverage",
    "ratio_monthly",
    "ratio_monthly_first",
    "ratio_loop_full",
    "wp_help",
    "wp_dec_first",
    "wp_dec_warm",
    "wp_dec_first_ratio",
    "wp_import_run",
    "wp_full_first",
    "wp_full_warm",
    "wp_full_first_ratio",
    "wp_check_first",
    "wp_check_warm",
    "wp_check_first_ratio",
    "ratio_loop_whole",
)


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory) -> report.Results:
    """One run of the whole harness on a one-season warehouse, one sample per measurement."""
    scratch = tmp_path_factory.mktemp("bench")
    return run(
        Config(
            sizes=(1,),
            baseline_sizes=(1,),
            repeats=1,
            scratch=scratch,
            output=None,
            profiles=False,
            job_seconds=0.2,
            loop_dates=10,  # the whole-history loop's row, on its first 10 dates
            extras=False,  # first paint and BigQuery bytes: their own test below, and the bench
        )
    )


@pytest.mark.slow
def test_the_harness_measures_every_row_and_writes_them_all(tiny_results):
    keys = [row.key for row in tiny_results.rows]
    assert sorted(keys) == sorted(EVERY_ROW)
    assert all(row.size == 1 for row in tiny_results.rows)
    assert all(row.n == 1 for row in tiny_results.rows if not row.key.startswith("parallel_ratio"))
    text = report.markdown(tiny_results)
    for row in tiny_results.rows:
        assert report.row_line(row) in text
    assert "## Machine" in text and "Load average" in text and "## SPEC 5 targets" in text


@pytest.mark.slow
def test_the_benchmark_backfills_succeed_and_count_their_statements(tiny_results):
    rows = {row.key: row for row in tiny_results.rows}
    for key in ("dec_seconds", "full_10000", "full_default", "parallel_1", "parallel_4"):
        assert "status succeeded" in rows[key].note
    assert rows["dec_statements"].median == rows["dec_statements"].low > 0
    assert rows["baseline_loop_dec"].note.startswith("124 statements")  # 31 dates x 2 stages x 2
    assert all(rows[f"mem_{what}"].median > 0 for what in ("full", "december", "coverage"))


@pytest.mark.slow
def test_the_monthly_baseline_finds_the_products_numbers_in_the_run(tiny_results):
    monthly = [c for c in tiny_results.comparisons if c.name.startswith("one query per month")]
    assert [c.name.split("(")[-1] for c in monthly] == [
        "cold: a fresh process, the kept snapshot)",
        "first-ever: everything measured)",
    ]
    assert all(c.same_numbers is True for c in monthly)
    assert all(c.ratio > 0 for c in tiny_results.comparisons)


def test_the_monthly_baseline_computes_the_same_coverage_as_the_product(read_only_demo):
    settings = Settings(warehouse=read_only_demo.path)
    first, last = coverage.data_bounds(read_only_demo)
    daily = coverage.daily_coverage(read_only_demo, settings, first, last)
    monthly = coverage.monthly_coverage(read_only_demo, settings, first, last, daily=daily)
    by_hand = baselines.monthly_by_hand(read_only_demo, settings)
    assert baselines.same_numbers(by_hand, monthly, daily, settings) == {
        "player_coverage_per_month": True,
        "date_statuses": True,
    }
    december = by_hand.months.set_index(["period", "stage"]).loc[("2021-12", "predictions")]
    assert (december["players_covered"], december["players_total"]) == tuple(
        monthly.set_index(["period", "stage"]).loc[
            ("2021-12", "predictions"), ["players_covered", "players_total"]
        ]
    )


def test_a_changed_number_is_caught_by_the_comparison(read_only_demo):
    settings = Settings(warehouse=read_only_demo.path)
    first, last = coverage.data_bounds(read_only_demo)
    daily = coverage.daily_coverage(read_only_demo, settings, first, last)
    monthly = coverage.monthly_coverage(read_only_demo, settings, first, last, daily=daily)
    by_hand = baselines.monthly_by_hand(read_only_demo, settings)
    off_by_one = monthly.assign(players_covered=monthly["players_covered"] + (monthly["period"] == "2021-12"))
    assert baselines.same_numbers(by_hand, off_by_one, daily, settings)["player_coverage_per_month"] is False


def test_the_per_date_loop_issues_a_delete_and_an_insert_per_date_and_stage(demo, settings):
    days = [dt.date(2021, 12, 6), dt.date(2021, 12, 7)]
    statements = baselines.per_date_loop(demo, settings, days, dt.datetime(2022, 7, 20, tzinfo=dt.UTC))
    assert statements == len(days) * 2 * 2
    daily = coverage.daily_coverage(demo, settings, days[0], days[-1])
    assert set(daily["status"]) == {"ok"}  # Dec 7's missing predictions are back


@pytest.mark.slow
def test_bigquery_bytes_are_reported_per_page_load_and_per_31_date_backfill():
    from bench.extras import bigquery_bytes_rows
    from tests.bigquery.conftest import require_emulator

    require_emulator()
    rows = {row.key: row for row in bigquery_bytes_rows()}
    assert set(rows) == {
        f"bigquery_{work}_{measure}"
        for work in ("page_load", "backfill_31_dates")
        for measure in ("bytes_processed", "bytes_billed")
    }
    # BigQuery bills at least 10 MB per table a query references: every statement reads one or more.
    assert rows["bigquery_page_load_bytes_billed"].median >= 10
    assert (
        rows["bigquery_backfill_31_dates_bytes_billed"].median
        > rows["bigquery_page_load_bytes_billed"].median
    )


def test_a_growth_measured_in_pairs_is_kept_and_the_others_come_from_medians():
    from bench.timing import Row

    rows = [
        Row("full_default", "Full backfill", 5, "s", [1.0, 1.0, 1.0]),
        Row("full_default", "Full backfill", 20, "s", [4.0, 4.0, 4.0]),
        Row("coverage_warm", "Coverage, warm", 5, "ms", [10.0]),
        Row("coverage_warm", "Coverage, warm", 20, "ms", [40.0]),
        Row("growth_full_default", "Growth in pairs", 20, "x per 2.5x", [2.4, 2.5, 2.6]),
    ]
    grown = report.growth_rows(rows)
    # Four times the data at four times the time: linear, 2.5 per 2.5x (the warm coverage's growth).
    assert [(row.key, row.size) for row in grown] == [("growth_coverage_warm", 20)]
    assert grown[0].median == pytest.approx(2.5)


IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       100 |        100 | _io
import time:       200 |       1500 | backfill
import time:       300 |        300 |   numpy
import time:       600 |        600 |     pyarrow
import time:       400 |       1000 |   pandas
import time:       500 |        500 | sqlalchemy
"""


def test_the_import_profile_adds_only_top_level_imports_and_keeps_each_packages_first():
    from bench.whole_process import import_times

    total, packages = import_times(IMPORTTIME)
    assert total == pytest.approx((100 + 1500 + 500) / 1e6)  # the three lines imported by no module
    assert packages["pandas"] == pytest.approx(1000 / 1e6)
    assert packages["numpy"] == pytest.approx(300 / 1e6)  # imported from inside backfill
    assert packages["pyarrow"] == pytest.approx(600 / 1e6)  # and inside pandas, which counts it too
    assert packages["sqlalchemy"] == pytest.approx(500 / 1e6)
    assert "package" not in packages and "imported package" not in packages


MB = 2**20


def test_a_job_is_billed_at_least_10_mb_per_table_each_of_its_statements_references():
    from bench.bigquery_jobs import billed_floor

    # Counted by hand: a table joined twice is one table; a CTE and a script's BEGIN/COMMIT are none.
    assert (
        billed_floor(
            "SELECT a.x FROM `p.d.a` AS a JOIN `p.d.b` AS b ON a.k = b.k JOIN `p.d.a` AS c ON c.k = a.k"
        )
        == 20 * MB
    )
    assert billed_floor("WITH t AS (SELECT * FROM `p.d.a`) SELECT * FROM t") == 10 * MB
    script = "BEGIN TRANSACTION; DELETE FROM `p.d.a` WHERE d = @d; INSERT INTO `p.d.a` SELECT * FROM `p.e.b`; COMMIT TRANSACTION"
    assert billed_floor(script) == (10 + 20) * MB
    assert billed_floor("SELECT 1") == 0


def test_the_bigquery_section_pairs_each_works_jobs_with_its_bytes():
    from bench.timing import Row

    rows = [
        Row("bq_page_cold_jobs", "BigQuery query jobs, Page view, cold", 1, "jobs", [6], 0.0, "6 jobs on the emulator"),
        Row("bq_page_cold_billed", "BigQuery bytes billed (floor), Page view, cold", 1, "MB", [140], 0.0),
        Row("bq_page_rerun_jobs", "BigQuery query jobs, Page view, rerun", 1, "jobs", [0], 0.0, "none"),
        Row("bq_page_rerun_billed", "BigQuery bytes billed (floor), Page view, rerun", 1, "MB", [0], 0.0),
    ]  # fmt: skip
    lines = report.bigquery_jobs_table(rows).splitlines()
    assert lines[2:] == [
        "| Page view, cold | 6 | 140 MB | 6 jobs on the emulator |",
        "| Page view, rerun | 0 | 0 MB | none |",
    ]
    assert "Not measured" in report.bigquery_jobs_table([])


def _floor_from_text(sql: str) -> int:
    """10 MB per distinct backquoted project.dataset.table of each statement of the recorded text."""
    import re

    return sum(
        10 * MB * len(set(re.findall(r"`([^`.]+\.[^`.]+\.[^`]+)`", statement)))
        for statement in sql.split(";")
    )


def _script_form_jobs(sqls: list[str]) -> int:
    """Jobs in BigQuery's script form: BEGIN TRANSACTION through COMMIT TRANSACTION is one script."""
    jobs, inside = 0, False
    for sql in sqls:
        word = sql.strip().upper()
        if not inside:
            jobs += 1
        inside = (inside or word.startswith("BEGIN TRANSACTION")) and not word.startswith(
            "COMMIT TRANSACTION"
        )
    return jobs


@pytest.mark.slow
def test_bigquery_jobs_and_bytes_billed_per_page_view_check_and_backfill_come_from_the_recorded_jobs():
    from bench.bigquery_jobs import measure
    from tests.bigquery.conftest import require_emulator

    require_emulator()
    works = {work.key: work for work in measure() or []}
    assert list(works) == [
        "page_cold",
        "page_rerun",
        "page_after_write",
        "check_7_dates",
        "backfill_31_dates",
    ]
    assert works["page_rerun"].jobs == []  # unchanged data: the change stamp is metadata, no job
    for key in ("page_cold", "page_after_write"):
        assert works[key].query_jobs > 0, key
        assert {job.labels.get("action") for job in works[key].jobs} == {"page"}
    assert {job.labels.get("action") for job in works["check_7_dates"].jobs} == {"check"}
    for work in works.values():
        sqls = [job.sql for job in work.queries]
        assert work.bytes_billed == sum(_floor_from_text(sql) for sql in sqls), work.name
        assert work.query_jobs == _script_form_jobs(sqls), work.name
    backfill = works["backfill_31_dates"]
    assert backfill.emulator_jobs > backfill.query_jobs  # the emulator's sessions: a job per statement
    assert backfill.bytes_billed > works["check_7_dates"].bytes_billed > 0
