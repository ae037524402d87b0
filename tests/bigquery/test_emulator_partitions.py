"""INFORMATION_SCHEMA.PARTITIONS on the emulator: the query the adapter sends is accepted and lists
every date partition, but the emulator reports one time for all of a table's partitions (and DML
does not move it), so by default the adapter does not rely on it there (None: measure as usual)."""

from __future__ import annotations

import datetime as dt

from backfill.warehouse.bigquery import BigQueryWarehouse

DEC_1, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 31)


def test_the_emulator_adapter_does_not_trust_partition_times(emulator_demo):
    stages = emulator_demo.settings.pipeline.stages
    assert emulator_demo.partition_times(stages, DEC_1, DEC_31) is None


def test_the_partitions_query_lists_each_stage_tables_dates(emulator_demo):
    settings = emulator_demo.settings
    tracked = BigQueryWarehouse(
        settings, emulator_demo.project, client=emulator_demo.client, partition_times_tracked=True
    )
    times = tracked.partition_times(settings.pipeline.stages, DEC_1, DEC_31)
    # Independent: the distinct dates that have rows, by a plain query of each table.
    expected = set()
    for stage in settings.pipeline.stages:
        rows = emulator_demo.query(
            f"SELECT DISTINCT {stage.date_column} AS d FROM {{{stage.name}}} WHERE {stage.date_column} BETWEEN @a AND @b",
            {"a": DEC_1, "b": DEC_31},
        )
        expected |= {(stage.name, day) for day in rows["d"]}
    assert set(times) == expected
    assert len({day for _, day in expected}) > 20
    assert all(isinstance(changed_at, dt.datetime) and changed_at.tzinfo for changed_at in times.values())


def test_data_bounds_come_from_the_partitions_and_match_a_scan(emulator_demo):
    from backfill import coverage

    ref = emulator_demo.settings.pipeline.reference
    # Independent: the scan BigQuery refuses on a table that requires a partition filter.
    scanned = emulator_demo.query(
        f"SELECT MIN({ref.date_column}) AS a, MAX({ref.date_column}) AS b FROM {{{ref.name}}}"
    ).iloc[0]
    assert coverage.data_bounds(emulator_demo) == (scanned["a"], scanned["b"])
    bounds = emulator_demo.partition_bounds(ref)
    assert bounds is not None and (bounds.first, bounds.last) == (scanned["a"], scanned["b"])


def test_an_empty_table_has_no_bounds(emulator_demo):
    settings = emulator_demo.settings
    mlfs = settings.pipeline.stage("mlfs")
    table = f"{emulator_demo.project}.{settings.dataset_name(mlfs.dataset)}.empty_mlfs"
    emulator_demo.client.query(
        f"CREATE TABLE `{table}` (game_date DATE, player_lookup STRING) PARTITION BY game_date"
    ).result()
    from dataclasses import replace as replaced

    assert emulator_demo.partition_bounds(replaced(mlfs, table="empty_mlfs")) == (None, None)
