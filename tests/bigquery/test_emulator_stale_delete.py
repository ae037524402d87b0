"""Deleting the demo's stale rows on the emulator leaves exactly what it leaves on DuckDB (SPEC 4.3)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from backfill import stale
from backfill.warehouse.schema import TABLES
from tests.builtin import TABLES as BUILTIN_TABLES

DEC_1, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 31)


@pytest.fixture(scope="module")
def emulator_deleted(emulator_demo, emulator_settings):
    return stale.delete_stale(emulator_demo, emulator_settings, DEC_1, DEC_31)


@pytest.fixture(scope="module")
def duckdb_deleted(duckdb_demo, emulator_settings):
    return stale.delete_stale(duckdb_demo, emulator_settings, DEC_1, DEC_31)


def test_stale_rows_are_gone(emulator_deleted, emulator_demo, emulator_settings):
    assert set(emulator_deleted["category"]) == set(stale.CATEGORIES)
    assert stale.stale_counts(emulator_demo, emulator_settings, DEC_1, DEC_31).empty


def test_the_same_rows_were_deleted_as_on_duckdb(emulator_deleted, duckdb_deleted):
    pd.testing.assert_frame_equal(emulator_deleted, duckdb_deleted)


@pytest.mark.parametrize("table", list(BUILTIN_TABLES.values()))
def test_the_rows_left_are_the_same_as_on_duckdb(
    emulator_deleted, duckdb_deleted, emulator_demo, duckdb_demo, table
):
    key = list(TABLES[table].column_names)
    sql = f"SELECT * FROM {{{table}}} WHERE game_date BETWEEN @a AND @b"
    params = {"a": DEC_1, "b": DEC_31}
    expected = duckdb_demo.query(sql, params).sort_values(key).reset_index(drop=True)
    actual = emulator_demo.query(sql, params).sort_values(key).reset_index(drop=True)
    # predicted_points may differ by a cent: see test_every_row_is_the_same_as_duckdb.
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, check_exact=False, rtol=0, atol=0.0101)
