"""Batches sized by the work: the window a run takes when no batch size is asked (backfill.batching)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from backfill import batching
from backfill.config import load_settings
from backfill.ledger import Ledger
from backfill.pipeline import load_pipeline
from backfill.processors import processor_for
from backfill.request import BackfillRequest
from backfill.runner import create_run, execute_run
from backfill.warehouse.duckdb import DuckDBWarehouse

ROOT = Path(__file__).resolve().parent.parent
TODAY = lambda: dt.date(2026, 11, 27)  # noqa: E731
SEASON_2021 = (dt.date(2021, 10, 19), dt.date(2022, 4, 10))


def test_the_built_in_sql_stages_take_a_season_per_window_by_default(settings):
    request = BackfillRequest.build(
        settings, start=dt.date(2020, 1, 1), end=dt.date(2020, 12, 31), today=TODAY
    )
    assert request.batch_size is None
    assert batching.window_size(request, settings) == (batching.SEASON_DATES, "sized by the work")


def test_a_window_never_holds_more_dates_than_the_request(settings):
    request = BackfillRequest.build(
        settings, start=dt.date(2021, 12, 1), end=dt.date(2021, 12, 31), today=TODAY
    )
    assert batching.window_size(request, settings)[0] == 31


def test_an_asked_batch_size_wins_and_so_does_the_setting(settings):
    asked = BackfillRequest.build(
        settings, start=dt.date(2021, 12, 1), end=dt.date(2021, 12, 31), batch_size=4, today=TODAY
    )
    assert batching.window_size(asked, settings) == (4, "asked")
    configured = settings.replace(batch_size=9)
    request = BackfillRequest.build(
        configured, start=dt.date(2021, 12, 1), end=dt.date(2021, 12, 31), today=TODAY
    )
    assert batching.window_size(request, configured) == (9, "asked")


def test_batch_size_setting_unset_or_auto_means_sized_by_the_work(tmp_path):
    assert load_settings(environ={}, config_file="/dev/null").batch_size is None
    assert load_settings(environ={"BACKFILL_BATCH_SIZE": "auto"}, config_file="/dev/null").batch_size is None
    assert load_settings(environ={"BACKFILL_BATCH_SIZE": "12"}, config_file="/dev/null").batch_size == 12


def test_a_command_job_keeps_its_batch_size_and_a_window_holds_max_parallel_of_its_batches():
    pipeline = load_pipeline(ROOT / "examples" / "team_pipeline" / "pipeline.toml", environ={})
    for stage in pipeline.backfillable:
        processor = processor_for(stage, pipeline)
        config = stage.processor
        assert batching.processor_window(processor) == config.batch_size * config.max_parallel


def test_the_size_chosen_is_recorded_with_the_run_and_a_rerun_sizes_itself_again(demo, settings):
    request = BackfillRequest.build(
        settings, start=SEASON_2021[0], end=SEASON_2021[1], stages="mlfs", today=TODAY
    )
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, demo, request, "tester")
    params = ledger.get_run(run_id).params
    days = (SEASON_2021[1] - SEASON_2021[0]).days + 1
    assert (params["batch_size"], params["batch_size_asked"], params["batch_size_by"]) == (
        days,
        None,
        "sized by the work",
    )
    assert BackfillRequest.from_params(params).batch_size is None
    result = execute_run(run_id, demo, settings, ledger, sleep=lambda s: None)
    assert result.status == "succeeded"
    # One window: a measurement before and one after the stage's one replace.
    assert result.statements == 3


class _BillingWarehouse(DuckDBWarehouse):
    """A DuckDB warehouse that dry-runs like BigQuery: each date of a batch processes 1 GB."""

    SUPPORTS_DRY_RUN = True

    def estimate_bytes(self, template, params=None):
        return len(params["dates"]) * 10**9


def test_a_warehouse_that_bills_by_bytes_halves_the_window_until_a_batch_fits(settings):
    billed = settings.replace(maximum_bytes_billed=100 * 10**9)
    warehouse = _BillingWarehouse(billed, billed.warehouse)
    request = BackfillRequest.build(billed, start=SEASON_2021[0], end=SEASON_2021[1], today=TODAY)
    size, why = batching.window_size(request, billed, warehouse)
    days = (SEASON_2021[1] - SEASON_2021[0]).days + 1
    expected = days
    while expected * 10**9 > billed.maximum_bytes_billed:
        expected //= 2
    assert (size, why) == (expected, "sized by the work, bounded by the warehouse")
    unguarded = billed.replace(maximum_bytes_billed=0)  # no guard, no bound
    assert (
        batching.window_size(request, unguarded, _BillingWarehouse(unguarded, unguarded.warehouse))[0] == days
    )


def test_a_run_shrinks_its_window_to_the_bytes_bound_and_counts_its_dry_runs(settings):
    billed = settings.replace(maximum_bytes_billed=100 * 10**9)
    warehouse = _BillingWarehouse(billed, billed.warehouse)
    dry_runs = []
    estimate = warehouse.estimate_bytes

    def counted(template, params=None):
        warehouse._count()  # a dry run is a job on BigQuery: the run counts it
        dry_runs.append(len(params["dates"]))
        return estimate(template, params)

    warehouse.estimate_bytes = counted
    request = BackfillRequest.build(
        billed, start=SEASON_2021[0], end=SEASON_2021[1], stages="mlfs", today=TODAY
    )
    ledger = Ledger(billed.ledger)
    run_id = create_run(ledger, warehouse, request, "tester")
    result = execute_run(run_id, warehouse, billed, ledger, sleep=lambda s: None)
    params = ledger.get_run(run_id).params
    days = (SEASON_2021[1] - SEASON_2021[0]).days + 1
    assert (params["batch_size"], params["batch_size_by"]) == (
        days // 2,
        "sized by the work, bounded by the warehouse",
    )
    assert dry_runs == [days, days // 2]
    # Two windows of a measurement, a replace and a measurement, and the two dry runs.
    assert result.status == "succeeded" and result.statements == 2 * 3 + len(dry_runs)
    warehouse.close()


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]


def test_a_window_sized_by_the_work_ends_with_its_season():
    # Seasons start on August 1: 2020-10-01..2022-03-31 holds the end of 2020-21, all of 2021-22's
    # first part; 366-date windows would straddle 2021-08-01.
    dates = _days(dt.date(2020, 10, 1), dt.date(2022, 3, 31))
    windows = batching.windows(dates, batching.SEASON_DATES, by_season=True)
    assert [(w[0], w[-1]) for w in windows] == [
        (dt.date(2020, 10, 1), dt.date(2021, 7, 31)),
        (dt.date(2021, 8, 1), dt.date(2022, 3, 31)),
    ]
    # A smaller size still bounds each window.
    assert [len(w) for w in batching.windows(dates, 200, by_season=True)] == [200, 104, 200, 43]


def test_an_asked_batch_size_cuts_windows_by_count_alone():
    dates = _days(dt.date(2020, 10, 1), dt.date(2022, 3, 31))
    windows = batching.windows(dates, batching.SEASON_DATES, by_season=False)
    assert [len(w) for w in windows] == [366, len(dates) - 366]


def test_whole_seasons_share_a_window_while_their_reference_rows_fit():
    # Three seasons of dates, each season's game dates holding 10 rows a date (counted by hand below).
    dates = _days(dt.date(2019, 10, 1), dt.date(2022, 3, 31))
    rows = {day: 10 for day in dates if day.month in (10, 11, 12, 1, 2, 3)}
    per_season = {
        2019: sum(10 for day in dates if dt.date(2019, 8, 1) <= day < dt.date(2020, 8, 1) and day in rows),
        2020: sum(10 for day in dates if dt.date(2020, 8, 1) <= day < dt.date(2021, 8, 1) and day in rows),
    }
    # October to March: 31 + 30 + 31 + 31 + 29 + 31 days in 2019-20 (a leap February), 182 in 2020-21.
    assert per_season == {2019: 10 * 183, 2020: 10 * 182}
    # Room for two seasons: 2019-20 and 2020-21 share the first window, 2021-22 has the second.
    seasons = batching.windows(dates, batching.SEASON_DATES, by_season=True)
    windows = batching.packed(seasons, rows, max_rows=1830 + 1820)
    assert [(w[0], w[-1]) for w in windows] == [
        (dt.date(2019, 10, 1), dt.date(2021, 7, 31)),
        (dt.date(2021, 8, 1), dt.date(2022, 3, 31)),
    ]
    # No room for any two (2020-21 and 2021-22 hold 1820 + 1820): a season per window, as without counts.
    one = batching.packed(seasons, rows, max_rows=1820 + 1820 - 1)
    assert one == seasons
    assert len(one) == 3


def test_a_job_stage_keeps_its_own_windows_and_set_based_stages_pack_seasons(settings):
    pipeline = load_pipeline(ROOT / "examples" / "team_pipeline" / "pipeline.toml", environ={})
    jobs = [processor_for(stage, pipeline) for stage in pipeline.backfillable]
    assert not batching.packs_seasons(jobs)
    built_in = [processor_for(stage, settings.pipeline) for stage in settings.pipeline.backfillable]
    assert batching.packs_seasons(built_in)


def test_a_run_over_two_seasons_counts_its_rows_once_and_does_both_in_one_window(tmp_path):
    from backfill.config import Settings
    from backfill.demo import build_demo_file

    path = tmp_path / "two.duckdb"
    settings = Settings(
        warehouse=str(path), ledger=str(tmp_path / "ledger.sqlite"), retry_delays=(0.0,), max_range_days=1000
    )
    build_demo_file(path, settings, seasons=2, seed=7)
    warehouse = DuckDBWarehouse(settings, path)
    first, last = (warehouse.query(f"SELECT {f}(game_date) AS d FROM nba_analytics.player_game_summary")["d"][0]
                   for f in ("MIN", "MAX"))  # fmt: skip
    request = BackfillRequest.build(settings, start=first, end=last, today=TODAY)
    ledger = Ledger(settings.ledger)
    run_id = create_run(ledger, warehouse, request, "tester")
    result = execute_run(run_id, warehouse, settings, ledger, sleep=lambda s: None)
    warehouse.close()
    assert result.status == "succeeded"
    # Two demo seasons are far below WINDOW_ROWS: the row count, then one window of a measurement
    # before, each stage's replace and a measurement after each.
    assert result.statements == 1 + 1 + 2 * 2
    assert ledger.get_run(run_id).params["batch_size"] == (last - first).days + 1
    assert any("in 1 window of whole seasons" in e["message"] for e in ledger.events(run_id, limit=100))
