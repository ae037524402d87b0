"""The coverage snapshot answers exactly as a full measurement, re-measuring only what changed."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from backfill import coverage
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.launch import run_here
from backfill.request import BackfillRequest

TODAY = lambda: dt.date(2026, 11, 27)  # noqa: E731


def assert_same_as_full_measurement(snapshot, warehouse, settings, start, end):
    daily, monthly = snapshot.coverage(start, end)
    expected_daily = coverage.daily_coverage(warehouse, settings, start, end)
    expected_monthly = coverage.monthly_coverage(warehouse, settings, start, end, daily=expected_daily)
    pd.testing.assert_frame_equal(daily, expected_daily, check_dtype=False)
    pd.testing.assert_frame_equal(monthly, expected_monthly, check_dtype=False)


def test_snapshot_equals_a_full_measurement_and_refreshes_nothing_when_nothing_changed(demo, settings):
    first, last = coverage.data_bounds(demo)
    snapshot = CoverageSnapshot(demo, settings)
    assert_same_as_full_measurement(snapshot, demo, settings, first, last)
    measured = snapshot.dates_measured
    assert measured == (last - first).days + 1
    assert_same_as_full_measurement(snapshot, demo, settings, first, last)
    assert snapshot.dates_measured == measured  # second look: fingerprint only


def test_a_backfilled_date_is_remeasured_alone(demo, settings):
    first, last = coverage.data_bounds(demo)
    snapshot = CoverageSnapshot(demo, settings)
    snapshot.coverage(first, last)
    before = snapshot.dates_measured
    request = BackfillRequest.build(settings, dates="2021-12-07", stages="predictions", today=TODAY)
    run_here(settings, request, "tester", warehouse=demo, sleep=lambda s: None)
    assert_same_as_full_measurement(snapshot, demo, settings, first, last)
    assert snapshot.dates_measured - before == 1
    daily, _ = snapshot.coverage(first, last)
    row = daily[(daily["game_date"] == dt.date(2021, 12, 7)) & (daily["stage"] == "predictions")].iloc[0]
    assert row["status"] == "ok"


def test_a_changed_box_score_remeasures_the_rest_of_its_season(demo, settings):
    first, last = coverage.data_bounds(demo)
    snapshot = CoverageSnapshot(demo, settings)
    snapshot.coverage(first, last)
    before = snapshot.dates_measured
    # A player's first game of the season disappears upstream: his later dates' history shrinks.
    demo.execute(
        "DELETE FROM {pgs} WHERE game_date = @d AND player_lookup IN "
        "(SELECT player_lookup FROM {pgs} WHERE game_date = @d ORDER BY player_lookup LIMIT 5)",
        {"d": dt.date(2021, 10, 20)},
    )
    assert_same_as_full_measurement(snapshot, demo, settings, first, last)
    assert snapshot.dates_measured - before == (last - dt.date(2021, 10, 20)).days + 1


def test_partial_ranges_and_months_match_too(demo, settings):
    snapshot = CoverageSnapshot(demo, settings)
    assert_same_as_full_measurement(snapshot, demo, settings, dt.date(2021, 11, 15), dt.date(2022, 1, 10))
    assert_same_as_full_measurement(snapshot, demo, settings, dt.date(2021, 12, 5), dt.date(2021, 12, 9))


def test_where_the_warehouse_tracks_partition_times_they_replace_the_fingerprint_scan(settings):
    from backfill.warehouse.duckdb import DuckDBWarehouse

    class Tracked(DuckDBWarehouse):
        """The demo file, answering partition times as BigQuery's INFORMATION_SCHEMA.PARTITIONS would."""

        times: dict = {}

        def partition_times(self, stages, start, end):
            return dict(self.times)

    warehouse = Tracked(settings, settings.warehouse)
    first, last = dt.date(2021, 12, 1), dt.date(2021, 12, 31)
    stamp = dt.datetime(2022, 1, 1, tzinfo=dt.UTC)
    warehouse.times = {
        (stage.name, day): stamp
        for stage in settings.pipeline.stages
        for day in coverage.date_span(first, last)
    }
    snapshot = CoverageSnapshot(warehouse, settings)
    snapshot.coverage(first, last)
    measured, sent = snapshot.dates_measured, warehouse.statements_issued
    snapshot.coverage(first, last)
    assert (snapshot.dates_measured, warehouse.statements_issued) == (
        measured,
        sent,
    )  # no scan, no measurement

    warehouse.times[("predictions", dt.date(2021, 12, 7))] = stamp + dt.timedelta(hours=1)
    snapshot.coverage(first, last)
    assert snapshot.dates_measured == measured + 1  # the changed partition's date alone
    warehouse.close()
