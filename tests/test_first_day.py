"""A team's first day (SPEC 9.1-9.4): nothing written that the team did not declare, every mistake
refused before the first write, no date called done with stale rows left, and any range answered.

Expected values come from the demo's recipe and from SQL written here, never from the console.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import openpyxl
import pytest

from backfill.config import Settings
from backfill.demo import create_declared_tables
from backfill.errors import BadInput
from backfill.launch import delete_stale_rows, resume, run_here, submit
from backfill.ledger import Ledger
from backfill.ledger.holder import Holder
from backfill.pipeline import BUILTIN_PATH, load_pipeline
from backfill.request import BackfillRequest
from backfill.runner import create_run
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.faulty import FaultyWarehouse
from tests.team_warehouse import TEAM_MODEL_VERSION, checksums, copy_as_team_data

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "team_pipeline"
DEC_1, DEC_2, DEC_7 = dt.date(2021, 12, 1), dt.date(2021, 12, 2), dt.date(2021, 12, 7)
TODAY = dt.date.today()


def _environ(warehouse: Path, folder: Path, **more: str) -> dict[str, str]:
    return {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": str(warehouse),
        "BACKFILL_LEDGER": str(folder / "ledger.sqlite"),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
        "BACKFILL_CACHE_DIR": "off",
    } | more


def _cli(capsys, environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    """The command as a user runs it: a process of its own (it leaves no database open in the test)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BACKFILL_")}
    done = subprocess.run(
        [sys.executable, "-m", "backfill", *argv],
        env=env | environ, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    return lines[0]


# -- the demo pipeline writes only to a demo ------------------------------------------------------


@pytest.fixture
def team_warehouse(demo_file, tmp_path) -> Path:
    """The demo's rows copied into tables of a new file, with the team's own versions: no demo mark."""
    return copy_as_team_data(demo_file, tmp_path / "team.duckdb")


WRITES = {
    "run": ("run", "--dates", "2021-12-07"),
    "run-range": ("run", "--start", "2021-12-01", "--end", "2021-12-31"),
    "dry-run": ("run", "--dates", "2021-12-07", "--dry-run"),
    "detach": ("run", "--dates", "2021-12-07", "--detach"),
    "stale-delete": ("stale", "--start", "2021-12-01", "--end", "2021-12-31", "--delete", "--yes"),
}


@pytest.mark.parametrize("argv", WRITES.values(), ids=WRITES.keys())
def test_a_write_with_the_demo_pipeline_on_a_team_warehouse_is_refused_naming_the_pipeline_file(
    team_warehouse, tmp_path, capsys, argv
):
    before = checksums(team_warehouse)
    code, out, err = _cli(capsys, _environ(team_warehouse, tmp_path), *argv)
    assert code == 2
    line = _one_error_line(err)
    assert "built-in demo pipeline" in line and "pipeline file" in line and "Bring your own pipeline" in line
    assert out == ""  # refused before anything was listed or planned
    assert checksums(team_warehouse) == before
    assert Ledger(str(tmp_path / "ledger.sqlite")).list_runs() == []


def test_reads_work_on_a_team_warehouse_without_a_pipeline_file(team_warehouse, tmp_path, capsys):
    environ = _environ(team_warehouse, tmp_path)
    for argv in (
        ("coverage", "--start", "2021-12-01", "--end", "2021-12-31", "--format", "json"),
        ("gaps", "--start", "2021-12-01", "--end", "2021-12-31"),
        ("stale", "--start", "2021-12-01", "--end", "2021-12-31"),
    ):
        code, out, err = _cli(capsys, environ, *argv)
        assert code == 0, (argv, err)
        assert out and "error" not in err, argv
    code, _, err = _cli(capsys, environ, "check", "--start", "2021-12-01", "--end", "2021-12-31")
    assert code in (0, 1) and "error" not in err  # 1: the check found problems, which is its job


def test_doctor_fails_the_demo_pipeline_on_a_team_warehouse(team_warehouse, tmp_path, capsys):
    code, out, _ = _cli(capsys, _environ(team_warehouse, tmp_path), "doctor")
    assert code == 1
    (line,) = [text for text in out.splitlines() if text.startswith("FAIL")]
    assert line.startswith("FAIL  pipeline: the built-in demo pipeline writes only to a warehouse built by")


def test_the_console_backend_refuses_launch_resume_and_delete_on_a_team_warehouse(team_warehouse, tmp_path):
    settings = Settings(warehouse=str(team_warehouse), ledger=str(tmp_path / "ledger.sqlite"))
    before = checksums(team_warehouse)
    request = BackfillRequest.build(settings, dates=[DEC_7], today=lambda: TODAY)
    # A run recorded on this warehouse before demos were marked, whose process died since.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait(timeout=30)
    crashed = Ledger(settings.ledger, process=lambda: Holder(socket.gethostname(), ended.pid))
    warehouse = DuckDBWarehouse(settings, team_warehouse)
    try:
        run_id = create_run(crashed, warehouse, request, "tester")
        crashed.start_run(run_id)
        assert Ledger(settings.ledger).detect_interrupted() == [run_id]
        for action in (
            lambda: run_here(settings, request, "tester", warehouse=warehouse),
            lambda: delete_stale_rows(settings, DEC_1, DEC_7, "tester", warehouse=warehouse),
            lambda: resume(settings, run_id, "tester", warehouse=warehouse),
        ):
            with pytest.raises(BadInput, match="declare your team's pipeline file"):
                action()
    finally:
        warehouse.close()
    assert checksums(team_warehouse) == before
    with duckdb.connect(str(team_warehouse), read_only=True) as connection:
        versions = connection.execute(
            "SELECT DISTINCT model_version FROM nba_predictions.player_prop_predictions"
        ).fetchall()
    assert versions == [(TEAM_MODEL_VERSION,)]  # the demo's toy models never replaced the team's


def test_a_launch_submitted_anyway_is_refused_by_its_worker_before_any_write(team_warehouse, tmp_path):
    # What a forged click of the console does: the page offers no launch, the worker refuses.
    settings = Settings(warehouse=str(team_warehouse), ledger=str(tmp_path / "ledger.sqlite"))
    before = checksums(team_warehouse)
    request = BackfillRequest.build(settings, dates=[DEC_7], today=lambda: TODAY)
    run_id = submit(settings, request, "tester")
    ledger = Ledger(settings.ledger)
    deadline = time.monotonic() + 120
    while ledger.get_run(run_id).status in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.2)
    run = ledger.get_run(run_id)
    assert run.status == "failed", run
    assert run.message.startswith("stopped before any write: refused before any write: the built-in demo")
    # The worker may still be closing the file it checked: read it once it lets go.
    while True:
        try:
            after = checksums(team_warehouse)
            break
        except duckdb.IOException:
            assert time.monotonic() < deadline, "the worker still holds the warehouse"
            time.sleep(0.2)
    assert after == before


def test_a_demo_copied_whole_is_still_a_demo(demo_copy, tmp_path, capsys):
    # Copying the demo's file copies its marks: writing there is what the demo is for.
    code, out, err = _cli(capsys, _environ(demo_copy, tmp_path), "run", "--dates", "2021-12-07")
    assert code == 0, out + err


# -- one preflight: every column a stage names or implies -----------------------------------------


def _example_without_written_at(demo_file: Path, folder: Path) -> tuple[Path, Path]:
    """The README's team example in ``folder`` whose predictions stage no longer names its write-time
    column (``created_at``), on a demo copy with the example's tables: (pipeline file, warehouse)."""
    shutil.copytree(EXAMPLE / "jobs", folder / "jobs")
    text = (EXAMPLE / "pipeline.toml").read_text()
    pipeline_file = folder / "pipeline.toml"
    pipeline_file.write_text(text.replace('written_at_column = "created_at"\n', "", 1))
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(demo_file, warehouse)
    settings = Settings(warehouse=str(warehouse), pipeline=load_pipeline(EXAMPLE / "pipeline.toml"))
    adapter = DuckDBWarehouse(settings, warehouse)
    try:
        create_declared_tables(adapter, settings)
    finally:
        adapter.close()
    return pipeline_file, warehouse


EXAMPLE_TABLES = (
    "nba_precompute.ml_feature_store",
    "nba_predictions.player_prop_predictions",
    "nba_predictions.prediction_grades",
)


@pytest.mark.parametrize(
    "argv",
    [
        ("run", "--start", "2021-12-01", "--end", "2021-12-31"),
        ("run", "--dates", "2021-12-07", "--dry-run"),
        ("stale", "--start", "2021-12-01", "--end", "2021-12-31"),
        ("stale", "--start", "2021-12-01", "--end", "2021-12-31", "--delete", "--yes"),
        ("gaps", "--start", "2021-12-01", "--end", "2021-12-31"),
    ],
    ids=["run", "dry-run", "stale", "stale-delete", "gaps"],
)
def test_a_write_time_column_the_table_lacks_is_refused_naming_the_stage_and_the_column(
    demo_file, tmp_path, capsys, argv
):
    pipeline_file, warehouse = _example_without_written_at(demo_file, tmp_path)
    before = checksums(warehouse, EXAMPLE_TABLES)
    environ = _environ(warehouse, tmp_path, BACKFILL_PIPELINE=str(pipeline_file))
    code, out, err = _cli(capsys, environ, *argv)
    assert code == 2, out + err
    line = _one_error_line(err)
    assert "stage predictions" in line and "processed_at" in line and "written_at_column" in line
    assert "Binder" not in line and "Exception" not in line
    assert checksums(warehouse, EXAMPLE_TABLES) == before
    assert Ledger(str(tmp_path / "ledger.sqlite")).list_runs() == []


# -- done means complete and clean ----------------------------------------------------------------


def _duplicating_pipeline(folder: Path, clean_stale: bool) -> Path:
    """The built-in pipeline whose predictions come from a job that leaves a duplicate per date."""
    text = BUILTIN_PATH.read_text()
    builtin = re.search(r'^processor = \{ kind = "sql", builtin = "predictions".*\}$', text, re.M)
    assert builtin is not None
    job = (
        'processor = { kind = "python", function = "tests.first_day_jobs:leave_a_duplicate", '
        f"clean_stale = {'true' if clean_stale else 'false'} }}"
    )
    path = folder / "pipeline.toml"
    path.write_text(text[: builtin.start()] + job + text[builtin.end() :])
    return path


def _duplicates(warehouse: Path, days: list[dt.date]) -> int:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        ((extra,),) = connection.execute(
            """SELECT COALESCE(SUM(n - 1), 0) FROM (
                 SELECT COUNT(*) AS n FROM nba_predictions.player_prop_predictions
                 WHERE game_date IN (SELECT UNNEST($days))
                 GROUP BY game_date, player_lookup, system_id HAVING COUNT(*) > 1)""",
            {"days": days},
        ).fetchall()
    return int(extra)


def test_stale_rows_a_job_leaves_fail_its_dates_as_unclean_and_the_run_exits_1(demo_copy, tmp_path, capsys):
    pipeline_file = _duplicating_pipeline(tmp_path, clean_stale=False)
    environ = _environ(demo_copy, tmp_path, BACKFILL_PIPELINE=str(pipeline_file))
    code, out, _ = _cli(capsys, environ, "run", "--dates", "2021-12-01,2021-12-02", "--stages", "predictions")
    assert _duplicates(demo_copy, [DEC_1, DEC_2]) == 2  # one per date, as the job was written to leave
    assert code == 1
    assert "failed" in out.splitlines()[0] and "succeeded" not in out
    ledger = Ledger(environ["BACKFILL_LEDGER"])
    (run,) = ledger.list_runs()
    items = ledger.items(run.run_id)
    assert {(item["status"], item["error_class"]) for item in items} == {("failed", "unclean")}
    assert all("1 stale rows left after the work (duplicate 1)" in item["error_message"] for item in items)
    log = [event["message"] for event in ledger.events(run.run_id, limit=100)]
    assert "predictions: 2 stale rows left on 2 dates after the work" in log


def test_the_same_job_with_clean_stale_is_done_and_leaves_no_duplicate(demo_copy, tmp_path, capsys):
    pipeline_file = _duplicating_pipeline(tmp_path, clean_stale=True)
    environ = _environ(demo_copy, tmp_path, BACKFILL_PIPELINE=str(pipeline_file))
    code, out, err = _cli(
        capsys, environ, "run", "--dates", "2021-12-01,2021-12-02", "--stages", "predictions"
    )
    assert code == 0, out + err
    assert _duplicates(demo_copy, [DEC_1, DEC_2]) == 0


def test_a_clean_up_that_fails_fails_its_dates_as_unclean(demo_copy, tmp_path):
    pipeline_file = _duplicating_pipeline(tmp_path, clean_stale=True)
    settings = Settings(
        warehouse=str(demo_copy),
        ledger=str(tmp_path / "ledger.sqlite"),
        retry_delays=(0.0, 0.0, 0.0),
        pipeline=load_pipeline(pipeline_file),
    )
    warehouse = FaultyWarehouse(settings, demo_copy)

    def refuse_the_clean_up(params: dict) -> None:
        # The clean-up's deletion is the only statement with the run's dates: the job binds its own.
        if "dates" in params:
            raise PermissionError("injected: Access Denied: DELETE on player_prop_predictions")

    warehouse.on_execute = refuse_the_clean_up
    request = BackfillRequest.build(settings, dates=[DEC_1, DEC_2], stages="predictions", today=lambda: TODAY)
    result = run_here(settings, request, "tester", warehouse=warehouse)
    warehouse.close()
    assert result.status == "failed" and result.exit_code == 1
    items = Ledger(settings.ledger).items(result.run_id)
    assert {(item["status"], item["error_class"]) for item in items} == {("failed", "unclean")}
    for item in items:
        assert "deleting its stale rows failed (injected: Access Denied" in item["error_message"]
        assert "1 stale rows left after the work (duplicate 1)" in item["error_message"]
    assert _duplicates(demo_copy, [DEC_1, DEC_2]) == 2


# -- any range answers ----------------------------------------------------------------------------

NO_DATA = "no data from 2026-01-01 to 2026-01-31; the warehouse holds 2021-10-19 to 2022-04-10"
EMPTY = ("--start", "2026-01-01", "--end", "2026-01-31")


def test_check_since_7d_on_a_warehouse_whose_data_ended_long_ago_says_so(demo_copy, tmp_path, capsys):
    code, out, err = _cli(capsys, _environ(demo_copy, tmp_path), "check", "--since", "7d")
    assert (code, err) == (0, "")
    week = f"{TODAY - dt.timedelta(days=7)} to {TODAY}"
    assert out.strip().endswith(f"no data from {week}; the warehouse holds 2021-10-19 to 2022-04-10")


@pytest.mark.parametrize(
    "argv",
    [
        ("coverage", *EMPTY),
        ("coverage", *EMPTY, "--by", "date"),
        ("gaps", *EMPTY),
        ("stale", *EMPTY),
        ("run", *EMPTY, "--dry-run"),
    ],
    ids=["coverage", "coverage-by-date", "gaps", "stale", "dry-run"],
)
def test_a_read_over_a_range_without_games_answers_in_one_line(demo_copy, tmp_path, capsys, argv):
    code, out, err = _cli(capsys, _environ(demo_copy, tmp_path), *argv)
    assert (code, err) == (0, "")
    (line,) = out.strip().splitlines()
    assert NO_DATA in line


def test_coverage_as_json_and_csv_over_a_range_without_games_is_empty_and_well_formed(
    demo_copy, tmp_path, capsys
):
    environ = _environ(demo_copy, tmp_path)
    code, out, err = _cli(capsys, environ, "coverage", *EMPTY, "--format", "json")
    assert code == 0 and json.loads(out) == [] and err.strip() == f"note: {NO_DATA}"
    code, out, err = _cli(capsys, environ, "coverage", *EMPTY, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0 and rows == [] and "player_coverage_pct" in out.splitlines()[0]


@pytest.mark.parametrize("suffix", [".csv", ".json", ".md", ".xlsx"])
def test_a_gap_report_over_a_range_without_games_is_written_well_formed(demo_copy, tmp_path, capsys, suffix):
    path = tmp_path / f"report{suffix}"
    code, out, err = _cli(capsys, _environ(demo_copy, tmp_path), "gaps", *EMPTY, "--output", str(path))
    assert (code, err) == (0, "")
    (line,) = out.strip().splitlines()
    assert line.startswith(NO_DATA)
    if suffix == ".csv":
        assert list(csv.DictReader(io.StringIO(path.read_text()))) == []
    elif suffix == ".json":
        document = json.loads(path.read_text())
        assert document["gaps"] == [] and document["stale_rows"] == [] and document["note"] == NO_DATA
    elif suffix == ".md":
        text = path.read_text()
        assert text.startswith("# Prediction coverage report: 2026-01-01 to 2026-01-31")
        assert f"- Note: {NO_DATA}" in text
    else:
        workbook = openpyxl.load_workbook(path)
        assert workbook.sheetnames  # opens as a workbook


# -- the console says the same ---------------------------------------------------------------------


def test_the_backfill_page_explains_the_refusal_instead_of_offering_a_launch(
    team_warehouse, tmp_path, monkeypatch
):
    from tests.console_app import console_app, texts

    settings = Settings(warehouse=str(team_warehouse), ledger=str(tmp_path / "ledger.sqlite"))
    at = console_app(settings, tmp_path, monkeypatch)
    at.run()
    at = at.switch_page("pages/backfill.py").run()
    assert not at.exception
    refusal = texts(at.error)
    assert "the built-in demo pipeline writes only to a warehouse built by python -m backfill demo" in refusal
    assert "declare your team's pipeline file" in refusal
    assert at.button(key="backfill_launch").disabled
    at = at.switch_page("pages/gaps.py").run()
    assert not at.exception
    assert "declare your team's pipeline file" in texts(at.error)
    assert at.button(key="gaps_delete_review_button").disabled
