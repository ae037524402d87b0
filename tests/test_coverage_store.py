"""The coverage snapshot kept between processes: reused when nothing changed, re-measured where
something did, and never the source of a wrong figure (damaged, foreign or concurrently written
files read as absent or whole).

Expected figures come from :func:`backfill.coverage.daily_coverage` and ``monthly_coverage``, a
full measurement that knows nothing of snapshots.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from backfill import cache_files, coverage, freshness
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.coverage_store import CoverageStore
from backfill.errors import BadInput
from backfill.pipeline import BUILTIN_PATH, parse_pipeline
from backfill.warehouse.duckdb import DuckDBWarehouse
from backfill.warehouse.sql import forget_translations, translate

ROOT = Path(__file__).resolve().parents[1]

# A fresh interpreter: loads the kept snapshot, measures the whole range, pickles what it answered.
FRESH_PROCESS = """
import pickle, sys
from backfill import coverage
from backfill.config import Settings
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.warehouse import connect

warehouse_path, ledger, out = sys.argv[1:]
settings = Settings(warehouse=warehouse_path, ledger=ledger)
warehouse = connect(settings)
first, last = coverage.data_bounds(warehouse)
snapshot = CoverageSnapshot.persisted(warehouse, settings)
daily, monthly = snapshot.coverage(first, last)
warehouse.close()
with open(out, "wb") as file:
    pickle.dump({"dates_measured": snapshot.dates_measured, "daily": daily, "monthly": monthly}, file)
"""


def full_measurement(warehouse, settings, start, end):
    daily = coverage.daily_coverage(warehouse, settings, start, end)
    return daily, coverage.monthly_coverage(warehouse, settings, start, end, daily=daily)


def assert_answers_as_a_full_measurement(answer, warehouse, settings, start, end):
    expected_daily, expected_monthly = full_measurement(warehouse, settings, start, end)
    pd.testing.assert_frame_equal(answer[0], expected_daily, check_dtype=False)
    pd.testing.assert_frame_equal(answer[1], expected_monthly, check_dtype=False)


def fresh(settings) -> tuple[DuckDBWarehouse, CoverageSnapshot]:
    """A new adapter and a snapshot loaded from the kept file, as a new process would make them."""
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    return warehouse, CoverageSnapshot.persisted(warehouse, settings)


def store_file(warehouse, settings) -> Path:
    store = CoverageSnapshot.persisted(warehouse, settings).store
    assert store is not None
    return store.path


def test_a_fresh_process_reuses_the_kept_snapshot_and_measures_nothing(demo, settings, tmp_path):
    first, last = coverage.data_bounds(demo)
    CoverageSnapshot.persisted(demo, settings).coverage(first, last)
    demo.close()  # the other process opens the file

    out = tmp_path / "answer.pickle"
    done = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, settings.warehouse, settings.ledger, str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    answer = pickle.loads(out.read_bytes())
    assert answer["dates_measured"] == 0
    assert_answers_as_a_full_measurement((answer["daily"], answer["monthly"]), demo, settings, first, last)


def test_the_first_ever_look_measures_every_date_and_keeps_them(demo, settings):
    first, last = coverage.data_bounds(demo)
    warehouse, snapshot = fresh(settings)
    assert_answers_as_a_full_measurement(snapshot.coverage(first, last), demo, settings, first, last)
    assert snapshot.dates_measured == (last - first).days + 1
    warehouse.close()
    assert store_file(demo, settings).is_file()


def test_a_write_by_another_connection_between_two_processes_is_remeasured_alone(demo, settings):
    first, last = coverage.data_bounds(demo)
    warehouse, snapshot = fresh(settings)
    snapshot.coverage(first, last)
    warehouse.close()

    # Another connection removes the predictions of a date that had them all.
    before = coverage.daily_coverage(demo, settings, first, last)
    day = before[(before["stage"] == "predictions") & (before["status"] == "ok")]["game_date"].iloc[-1]
    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": day})
    other.close()

    warehouse, snapshot = fresh(settings)
    answer = snapshot.coverage(first, last)
    assert snapshot.dates_measured == 1
    assert_answers_as_a_full_measurement(answer, demo, settings, first, last)
    daily = answer[0]
    row = daily[(daily["game_date"] == day) & (daily["stage"] == "predictions")].iloc[0]
    assert (row["players_covered"], row["status"]) == (0, "missing")
    warehouse.close()

    # That process kept what it learned: the next one measures nothing.
    warehouse, snapshot = fresh(settings)
    snapshot.coverage(first, last)
    assert snapshot.dates_measured == 0
    warehouse.close()


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_count(path: Path) -> None:
    """Change one figure inside the file, leaving its header as it was."""
    data = path.read_bytes()
    at = data.index(b'"counts":[[') + len(b'"counts":[[')
    at = data.index(b",", at) + 1  # the first count after the date
    digit = data[at : at + 1]
    path.write_bytes(data[:at] + (b"7" if digit != b"7" else b"8") + data[at + 1 :])


def _foreign_format(path: Path) -> None:
    """An intact file of another format version (its own digest is right)."""
    saved = json.loads(cache_files.read(path))
    saved["format"] = saved["format"] + 1
    cache_files.write(path, json.dumps(saved).encode())


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot a snapshot")


@pytest.mark.parametrize("damage", [_truncate, _flip_a_count, _foreign_format, _garbage])
def test_a_damaged_or_foreign_file_is_measured_anew_and_rewritten(demo, settings, damage):
    first, last = coverage.data_bounds(demo)
    warehouse, snapshot = fresh(settings)
    snapshot.coverage(first, last)
    warehouse.close()
    path = store_file(demo, settings)
    damage(path)

    warehouse, snapshot = fresh(settings)
    answer = snapshot.coverage(first, last)
    assert snapshot.dates_measured == (last - first).days + 1
    assert_answers_as_a_full_measurement(answer, demo, settings, first, last)
    warehouse.close()

    warehouse, snapshot = fresh(settings)  # rewritten whole: used again
    snapshot.coverage(first, last)
    assert snapshot.dates_measured == 0
    warehouse.close()


def test_another_keys_file_in_this_keys_place_is_not_used(demo, settings):
    """A file copied over another's (same format, intact) names its own key: it reads as absent."""
    first, last = coverage.data_bounds(demo)
    other_settings = settings.replace(pipeline=_pipeline_with_bootstrap(5))
    other = CoverageSnapshot.persisted(demo, other_settings)
    other.coverage(first, last)
    assert other.store is not None
    path = store_file(demo, settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(other.store.path.read_bytes())

    warehouse, snapshot = fresh(settings)
    answer = snapshot.coverage(first, last)
    assert snapshot.dates_measured == (last - first).days + 1
    assert_answers_as_a_full_measurement(answer, demo, settings, first, last)
    warehouse.close()


def _pipeline_with_bootstrap(games: int):
    text = BUILTIN_PATH.read_text()
    assert text.count("bootstrap_min_history = 3") == 2
    return parse_pipeline(text.replace("bootstrap_min_history = 3", f"bootstrap_min_history = {games}"))


def test_another_pipeline_file_keeps_its_own_snapshot(demo, settings):
    first, last = coverage.data_bounds(demo)
    stricter = settings.replace(pipeline=_pipeline_with_bootstrap(5))
    for each in (settings, stricter):
        CoverageSnapshot.persisted(demo, each).coverage(first, last)
    assert store_file(demo, settings) != store_file(demo, stricter)
    for each in (settings, stricter):
        warehouse, snapshot = fresh(each)
        answer = snapshot.coverage(first, last)
        assert snapshot.dates_measured == 0
        assert_answers_as_a_full_measurement(answer, demo, each, first, last)
        warehouse.close()
    # The bootstrap rule changes figures, so sharing a snapshot would have shown wrong ones.
    plain = coverage.daily_coverage(demo, settings, first, last)
    strict = coverage.daily_coverage(demo, stricter, first, last)
    assert plain["bootstrap_players"].sum() < strict["bootstrap_players"].sum()


def test_another_warehouse_keeps_its_own_snapshot(demo, settings, tmp_path):
    first, last = coverage.data_bounds(demo)
    demo.close()
    second_path = tmp_path / "second.duckdb"
    second_path.write_bytes(Path(settings.warehouse).read_bytes())
    second_settings = settings.replace(warehouse=str(second_path))
    second = DuckDBWarehouse(second_settings, second_path)
    second.execute("DELETE FROM {mlfs} WHERE game_date = @d", {"d": dt.date(2021, 12, 1)})
    for each in (settings, second_settings):
        warehouse, snapshot = fresh(each)
        snapshot.coverage(first, last)
        warehouse.close()
    assert store_file(demo, settings) != store_file(second, second_settings)
    for each, adapter in ((settings, demo), (second_settings, second)):
        warehouse, snapshot = fresh(each)
        answer = snapshot.coverage(first, last)
        assert snapshot.dates_measured == 0
        assert_answers_as_a_full_measurement(answer, adapter, each, first, last)
        warehouse.close()
    second.close()


def test_nothing_is_kept_when_caching_is_off_or_the_warehouse_is_in_memory(settings):
    off = settings.replace(cache_dir="off")
    warehouse = DuckDBWarehouse(off, off.warehouse)
    assert CoverageSnapshot.persisted(warehouse, off).store is None
    warehouse.close()
    memory = settings.replace(warehouse=":memory:")
    warehouse = DuckDBWarehouse(memory, ":memory:")
    assert CoverageSnapshot.persisted(warehouse, memory).store is None
    warehouse.close()


SAVE_MANY = """
import sys
from pathlib import Path
from backfill.coverage_store import CoverageStore
store = CoverageStore(Path(sys.argv[1]), sys.argv[2])
for number in range(int(sys.argv[4])):
    store.save({"writer": int(sys.argv[3]), "number": number, "padding": "x" * 200_000})
"""
"""A writer process: saves a 200 KB state 40 times over (its own processes: not multiprocessing,
whose spawned children re-run the parent's __main__, which an AppTest in the same worker replaces)."""


def test_two_processes_saving_at_once_never_leave_a_mixed_or_broken_file(tmp_path):
    path, key = tmp_path / "coverage" / "k.json", "k"
    reader = CoverageStore(path, key)
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    writers = [
        subprocess.Popen([sys.executable, "-c", SAVE_MANY, str(path), key, str(marker), "40"], env=env)
        for marker in (1, 2)
    ]
    while any(writer.poll() is None for writer in writers):
        existed = path.exists()  # files are only ever replaced, never removed
        state = reader.load()
        if existed:
            # Once a file exists, every read is one writer's whole state (never absent, never mixed).
            assert state is not None
            assert state["padding"] == "x" * 200_000
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    final = reader.load()
    assert final is not None and final["number"] == 39 and final["writer"] in (1, 2)
    assert not [leftover for leftover in path.parent.iterdir() if leftover.name.endswith(".tmp")]


def test_a_kept_translation_is_used_only_when_intact(tmp_path):
    sql = "SELECT FARM_FINGERPRINT('a') AS h, FORMAT_DATE('%Y-%m', DATE '2021-12-07') AS period"
    folder = tmp_path / "sql"
    expected = translate(sql, "duckdb")  # no folder: straight from sqlglot
    forget_translations()
    assert translate(sql, "duckdb", folder) == expected
    (kept,) = folder.iterdir()
    forget_translations()
    assert translate(sql, "duckdb", folder) == expected  # read back from the file

    # A tampered file (its digest no longer matches) is ignored and written anew.
    kept.write_bytes(kept.read_bytes().replace(b"HASH", b"HASX"))
    forget_translations()
    assert translate(sql, "duckdb", folder) == expected
    assert b"HASX" not in kept.read_bytes()
    forget_translations()


def test_the_coverage_command_keeps_the_snapshot_and_shows_an_outside_write(demo, settings, capsys):
    from backfill.cli import main

    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_WAREHOUSE": settings.warehouse,
    }
    first, last = coverage.data_bounds(demo)
    demo.close()
    assert main(["coverage", "--by", "month", "--format", "json"], environ=environ) == 0
    capsys.readouterr()
    assert store_file(demo, settings).is_file()

    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DELETE FROM {mlfs} WHERE game_date = @d", {"d": dt.date(2021, 12, 1)})
    other.close()
    assert main(["coverage", "--by", "month", "--format", "json"], environ=environ) == 0
    shown = {(row["period"], row["stage"]): row for row in json.loads(capsys.readouterr().out)}
    _, expected = full_measurement(demo, settings, first, last)
    for row in expected.to_dict("records"):
        figures = shown[(row["period"], row["stage"])]
        assert (figures["players_covered"], figures["player_games_covered"]) == (
            row["players_covered"],
            row["player_games_covered"],
        )


def settled(warehouse, deadline_s: float = 15.0) -> str:
    """The warehouse's change stamp once its last write is old enough to vouch for (polled)."""
    deadline = time.monotonic() + deadline_s
    while (stamp := warehouse.change_stamp()) is None:
        assert time.monotonic() < deadline, "the warehouse file never settled"
        time.sleep(0.05)
    return stamp


@pytest.mark.slow
def test_an_untouched_warehouse_file_needs_not_even_a_fingerprint(demo, settings):
    first, last = coverage.data_bounds(demo)
    settled(demo)
    warehouse, snapshot = fresh(settings)
    snapshot.coverage(first, last)
    warehouse.close()

    warehouse, snapshot = fresh(settings)
    answer = snapshot.coverage(first, last)
    assert (snapshot.dates_measured, warehouse.statements_issued) == (0, 0)
    assert_answers_as_a_full_measurement(answer, demo, settings, first, last)
    warehouse.close()


@pytest.mark.slow
def test_a_write_after_the_stamp_is_fingerprinted_and_remeasured(demo, settings):
    first, last = coverage.data_bounds(demo)
    before = settled(demo)
    warehouse, snapshot = fresh(settings)
    snapshot.coverage(first, last)
    warehouse.close()
    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DELETE FROM {mlfs} WHERE game_date = @d", {"d": dt.date(2021, 12, 2)})
    other.close()
    assert settled(demo) != before

    warehouse, snapshot = fresh(settings)
    answer = snapshot.coverage(first, last)
    assert snapshot.dates_measured == 1
    assert_answers_as_a_full_measurement(answer, demo, settings, first, last)
    warehouse.close()


@pytest.mark.slow
def test_a_look_at_part_of_the_range_vouches_for_that_part_only(demo, settings):
    """A write lands in December; a look at January alone sees a new stamp but checks only January,
    so the next look at the whole range must still find December's change."""
    first, last = coverage.data_bounds(demo)
    settled(demo)
    snapshot = CoverageSnapshot.persisted(demo, settings)
    snapshot.coverage(first, last)
    demo.execute("DELETE FROM {mlfs} WHERE game_date = @d", {"d": dt.date(2021, 12, 2)})
    settled(demo)
    snapshot.coverage(dt.date(2022, 1, 1), dt.date(2022, 1, 31))
    measured = snapshot.dates_measured
    assert_answers_as_a_full_measurement(snapshot.coverage(first, last), demo, settings, first, last)
    assert snapshot.dates_measured == measured + 1


@pytest.mark.slow
def test_the_datas_bounds_are_kept_while_the_file_is_unchanged_and_read_again_after_a_write(demo, settings):
    first, last = coverage.data_bounds(demo)
    settled(demo)
    warehouse, snapshot = fresh(settings)
    assert snapshot.bounds() == (first, last)
    snapshot.coverage(first, last)  # saves what it learned
    warehouse.close()

    warehouse, snapshot = fresh(settings)
    assert snapshot.bounds() == (first, last)
    assert warehouse.statements_issued == 0
    warehouse.close()

    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DELETE FROM {pgs} WHERE game_date = @d", {"d": last})
    other.close()
    warehouse, snapshot = fresh(settings)
    found = snapshot.bounds()
    assert found == coverage.data_bounds(demo) and found[1] < last
    warehouse.close()


@pytest.mark.slow
def test_a_dropped_stage_table_is_noticed_though_an_earlier_check_passed(demo, settings):
    first, last = coverage.data_bounds(demo)
    settled(demo)
    warehouse, snapshot = fresh(settings)
    snapshot.check_stage_tables()
    snapshot.coverage(first, last)
    warehouse.close()

    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DROP TABLE {pred}")
    other.close()
    warehouse, snapshot = fresh(settings)
    with pytest.raises(BadInput, match="stage predictions"):
        snapshot.check_stage_tables()
    warehouse.close()


def test_partition_times_kept_between_processes_are_the_fingerprint_where_the_warehouse_tracks_them(settings):
    """As on BigQuery: no change stamp, INFORMATION_SCHEMA.PARTITIONS' times as fingerprints."""

    class Tracked(DuckDBWarehouse):
        """The demo file, answering partition times as BigQuery would, and with no change stamp."""

        times: dict = {}

        def partition_times(self, stages, start, end):
            return {key: value for key, value in self.times.items() if start <= key[1] <= end}

        def change_stamp(self):
            return None

    first, last = dt.date(2021, 12, 1), dt.date(2021, 12, 31)
    stamp = dt.datetime(2022, 1, 1, 12, 30, tzinfo=dt.UTC)
    Tracked.times = {
        (stage.name, day): stamp
        for stage in settings.pipeline.stages
        for day in coverage.date_span(dt.date(2021, 10, 1), last)
    }

    def fresh_tracked():
        warehouse = Tracked(settings, settings.warehouse)
        return warehouse, CoverageSnapshot.persisted(warehouse, settings)

    warehouse, snapshot = fresh_tracked()
    snapshot.coverage(first, last)
    warehouse.close()

    warehouse, snapshot = fresh_tracked()
    answer = snapshot.coverage(first, last)
    assert (snapshot.dates_measured, warehouse.statements_issued) == (0, 0)
    assert_answers_as_a_full_measurement(answer, warehouse, settings, first, last)
    warehouse.close()

    Tracked.times[("predictions", dt.date(2021, 12, 20))] = stamp + dt.timedelta(minutes=5)
    warehouse, snapshot = fresh_tracked()
    snapshot.coverage(first, last)
    assert snapshot.dates_measured == 1
    warehouse.close()


@pytest.mark.slow
def test_the_consoles_fingerprint_reads_nothing_while_the_stamp_holds_and_moves_with_a_write(demo, settings):
    settled(demo)
    sent = demo.statements_issued
    quiet = freshness.warehouse_fingerprint(demo, settings.pipeline)
    assert freshness.warehouse_fingerprint(demo, settings.pipeline) == quiet
    assert demo.statements_issued == sent  # the stamp answered: no scan
    other = DuckDBWarehouse(settings, settings.warehouse)
    other.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": dt.date(2021, 12, 2)})
    other.close()
    assert freshness.warehouse_fingerprint(demo, settings.pipeline) != quiet  # at once: scanned
    settled(demo)
    assert freshness.warehouse_fingerprint(demo, settings.pipeline) != quiet  # settled: the new stamp
