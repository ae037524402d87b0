"""Command jobs live and die with their run (issue 21): a killed CLI, a job's leftover children, a lost
lease and a cancel all end the job's whole process tree. Real processes on a real DuckDB demo copy;
what the warehouse holds is checked with SQL written here."""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from backfill import launch
from backfill.ledger import Ledger
from backfill.pipeline import load_pipeline
from backfill.processors.command import _outcome
from backfill.request import BackfillRequest
from tests.test_processors import WRITE_PREDICTIONS, _alive, expected_players, make_pipeline, run

ROOT = Path(__file__).resolve().parent.parent
DEC_10 = dt.date(2021, 12, 10)
FIVE_DATES = [DEC_10 + dt.timedelta(days=n) for n in range(5)]
"""Five dates whose MLFS the demo has whole (Dec 9 is partial), so predictions can complete them."""


def wait_for(condition, within_s: float, what: str):
    """Poll ``condition`` until it is true (returned) or the deadline passes (an assertion)."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        time.sleep(0.02)


def predictions_per_date(warehouse: str, dates: list[dt.date]) -> dict[dt.date, int]:
    with duckdb.connect(warehouse, read_only=True) as database:
        rows = database.execute(
            "SELECT game_date, COUNT(DISTINCT player_lookup) FROM nba_predictions.player_prop_predictions "
            "WHERE game_date BETWEEN ? AND ? GROUP BY game_date",
            [min(dates), max(dates)],
        ).fetchall()
    return {day: count for day, count in rows}


def pid_in(path: Path) -> int | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    return int(text) if text.strip() else None


@pytest.mark.slow
def test_a_job_is_gone_within_2_s_of_its_clis_sigkill_and_the_resumed_dates_stay_complete(settings, tmp_path):
    """N1: the first attempt of the job sleeps, then writes and deletes half its rows; the CLI is
    killed while it sleeps. The resume's job writes correctly at once."""
    job_pid, first = tmp_path / "job.pid", tmp_path / "first-attempt"
    job = (
        textwrap.dedent(f"""
        import os, pathlib, time
        marker = pathlib.Path({str(first)!r})
        first = not marker.exists()
        if first:
            marker.touch()
            pathlib.Path({str(job_pid)!r}).write_text(str(os.getpid()))
            time.sleep(15)
    """)
        + WRITE_PREDICTIONS
        + textwrap.dedent("""
        if first:  # what the issue saw: then it deletes half its rows
            database = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
            database.execute(
                "DELETE FROM nba_predictions.player_prop_predictions WHERE CAST(game_date AS VARCHAR) "
                "IN (SELECT UNNEST($d)) AND hash(player_lookup) % 2 = 0", {"d": dates})
            database.close()
    """)
    )
    # clean_stale: the demo's MLFS has two duplicate rows on Dec 10, which this job turns into duplicate
    # predictions; a date is done only when clean (SPEC 9.3).
    path = make_pipeline(
        tmp_path,
        '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"], clean_stale = true }',
        {"p.py": job},
    )
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_PIPELINE": str(path),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
    }
    cli = subprocess.Popen(
        [sys.executable, "-m", "backfill", "run", "--start", "2021-12-10", "--end", "2021-12-14",
         "--stages", "predictions"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        pid = wait_for(lambda: pid_in(job_pid), 60, "the job started")
    finally:
        cli.kill()
        cli.wait()
    killed = time.monotonic()
    wait_for(lambda: not _alive(pid), 2.0, "the job ended with its CLI")
    assert time.monotonic() - killed < 2.0

    ledger = Ledger(settings.ledger)
    (interrupted,) = ledger.list_runs()
    pipeline_settings = settings.replace(pipeline=load_pipeline(path, environ={}))
    result = launch.resume(pipeline_settings, interrupted.run_id, "tester")
    assert (result.status, result.counts) == ("succeeded", {"done": 5})

    expected = {day: expected_players(settings, day) for day in FIVE_DATES}
    assert all(expected.values())
    watched_until = time.monotonic() + 30  # longer than the killed job's 15 s sleep
    while time.monotonic() < watched_until:
        assert predictions_per_date(settings.warehouse, FIVE_DATES) == expected
        time.sleep(0.5)


LEAVES_A_CHILD_ON_ITS_STDOUT = """
import subprocess
child = subprocess.Popen(["sleep", "3600"], start_new_session={escaped})
open({pid_file!r}, "w").write(str(child.pid))
"""


@pytest.mark.parametrize("escaped", [False, True], ids=["child", "escaped-grandchild"])
def test_a_job_leaving_a_process_on_its_stdout_ends_with_it_and_the_process_is_gone(
    settings, tmp_path, escaped
):
    child_pid = tmp_path / "child.pid"
    job = WRITE_PREDICTIONS + LEAVES_A_CHILD_ON_ITS_STDOUT.format(escaped=escaped, pid_file=str(child_pid))
    processor = '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"], timeout_s = 5 }'
    path = make_pipeline(tmp_path, processor, {"p.py": job})
    began = time.monotonic()
    result, items, _ = run(settings, path, max_attempts=1)
    assert time.monotonic() - began < 5 + 5
    assert items["2021-12-07"]["status"] == "done"
    assert not _alive(int(child_pid.read_text())), "the job's leftover outlived it"


def test_a_detached_grandchild_that_would_delete_later_is_killed_before_verification(settings, tmp_path):
    """Issue 21, 3: a grandchild in its own session deletes the batch's dates after the job exits 0."""
    grandchild_pid, deleted = tmp_path / "grandchild.pid", tmp_path / "deleted"
    later = textwrap.dedent(f"""
        import os, sys, time, duckdb
        time.sleep(3)
        database = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
        database.execute("DELETE FROM nba_predictions.player_prop_predictions WHERE game_date = DATE '2021-12-07'")
        database.close()
        open({str(deleted)!r}, "w").write("deleted")
    """)
    job = WRITE_PREDICTIONS + textwrap.dedent(f"""
        import subprocess
        child = subprocess.Popen([sys.executable, "-c", {later!r}], start_new_session=True,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        open({str(grandchild_pid)!r}, "w").write(str(child.pid))
    """)
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    _, items, _ = run(settings, path, max_attempts=1)
    assert items["2021-12-07"]["status"] == "done"
    assert not _alive(int(grandchild_pid.read_text()))  # gone before the run returned: it never deletes
    assert not deleted.exists()
    day = dt.date(2021, 12, 7)
    assert predictions_per_date(settings.warehouse, [day]) == {day: expected_players(settings, day)}


WRITES_TWICE = """
import time
open({wrote!r}, "w").write(str(os.getpid()))
time.sleep(8)  # then it would write again
open({again!r}, "w").write("wrote again")
"""


def _run_in_thread(settings, path: Path) -> tuple[threading.Thread, dict]:
    outcome: dict = {}

    def backfill() -> None:
        try:
            outcome["result"] = run(settings, path, max_attempts=1)[0]
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            outcome["error"] = exc

    thread = threading.Thread(target=backfill, daemon=True)
    thread.start()
    return thread, outcome


def test_a_lost_lease_kills_the_in_flight_job_before_it_writes_again(settings, tmp_path):
    wrote, again = tmp_path / "wrote", tmp_path / "again"
    job = WRITE_PREDICTIONS + WRITES_TWICE.format(wrote=str(wrote), again=str(again))
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    thread, outcome = _run_in_thread(settings, path)
    pid = wait_for(lambda: pid_in(wrote), 60, "the job wrote once")
    # Another holder takes the lease, as a process that declared this run dead would.
    with sqlite3.connect(settings.ledger) as database:
        taken = database.execute("UPDATE leases SET run_id = 'another-run' WHERE game_date = '2021-12-07'")
        assert taken.rowcount == 1
    wait_for(lambda: not _alive(pid), 5, "the job was killed")
    thread.join(30)
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert not again.exists()
    ledger = Ledger(settings.ledger)
    (run_record,) = ledger.list_runs()
    assert any(
        "no longer holds predictions 2021-12-07" in e["message"] for e in ledger.events(run_record.run_id)
    )


def test_a_cancel_kills_the_in_flight_job_and_the_run_ends_cancelled(settings, tmp_path):
    wrote, again = tmp_path / "wrote", tmp_path / "again"
    job = WRITE_PREDICTIONS + WRITES_TWICE.format(wrote=str(wrote), again=str(again))
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    thread, outcome = _run_in_thread(settings, path)
    pid = wait_for(lambda: pid_in(wrote), 60, "the job wrote once")
    ledger = Ledger(settings.ledger)
    (running,) = ledger.list_runs()
    ledger.request_cancel(running.run_id)
    wait_for(lambda: not _alive(pid), 5, "the job was killed")
    thread.join(30)
    assert not thread.is_alive() and "error" not in outcome, outcome
    assert not again.exists()
    assert outcome["result"].status == "cancelled"
    with sqlite3.connect(settings.ledger) as database:
        statuses = database.execute(
            "SELECT status, COUNT(*) FROM items WHERE run_id = ? GROUP BY status", [running.run_id]
        ).fetchall()
    assert statuses == [("cancelled", 1)]


def test_a_job_whose_program_is_gone_at_run_time_fails_its_dates_with_a_plain_reason(settings, tmp_path):
    # The file is refused when its program does not exist (tests/test_strict_config.py); this one was
    # there when the file was read, and deleted before the run.
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["./jobs/run.sh", "{dates}"] }', {"run.sh": "exit 0\n"}
    )
    script = tmp_path / "jobs" / "run.sh"
    script.chmod(0o755)
    loaded = settings.replace(pipeline=load_pipeline(path, environ={}))
    script.unlink()
    request = BackfillRequest.build(loaded, dates=[dt.date(2021, 12, 7)], stages="predictions", max_attempts=1,
                                    today=lambda: dt.date(2026, 11, 30))  # fmt: skip
    result = launch.run_here(loaded, request, "tester")
    (item,) = Ledger(settings.ledger).items(result.run_id)
    assert item["status"] == "failed"
    assert "cannot start './jobs/run.sh'" in item["error_message"]


def test_a_job_line_whose_date_is_a_list_or_object_is_logged_and_ignored(settings, tmp_path):
    job = WRITE_PREDICTIONS + textwrap.dedent("""
        print('{"date": ["2021-12-07"], "status": "failed"}')
        print('{"date": {"day": "2021-12-07"}, "status": "failed"}', flush=True)
    """)
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    result, items, ledger = run(settings, path, max_attempts=1)
    assert items["2021-12-07"]["status"] == "done"
    messages = [event["message"] for event in ledger.events(result.run_id)]
    assert any('"date": ["2021-12-07"]' in message for message in messages)
    assert any('"date": {"day": "2021-12-07"}' in message for message in messages)


def test_a_jobs_burst_of_output_goes_to_the_ledger_in_few_transactions(settings, tmp_path):
    job = WRITE_PREDICTIONS + "\nimport sys\nsys.stdout.write(''.join(f'line {n}\\n' for n in range(1000)))\n"
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    result, items, _ = run(settings, path, max_attempts=1)
    assert items["2021-12-07"]["status"] == "done"
    with sqlite3.connect(settings.ledger) as database:
        lines, moments = database.execute(
            "SELECT COUNT(*), COUNT(DISTINCT at) FROM events WHERE run_id = ? AND message LIKE 'predictions job: line %'",
            [result.run_id],
        ).fetchone()
    assert lines == 1000
    # A line a transaction would give 1000 moments; a batch of up to 200 shares one.
    assert moments <= 1000 // 200 + 5


@pytest.fixture(autouse=True)
def _no_pipeline_from_the_environment(monkeypatch):
    monkeypatch.delenv("BACKFILL_PIPELINE", raising=False)


def test_a_hanging_batch_is_tried_once_and_its_dates_fail_together(settings, tmp_path):
    """Issue 21, 7: a hung batch was retried whole, then split, (2N-1) x timeout_s. Its last words
    name a transient fault, which would otherwise be retried."""
    starts = tmp_path / "starts"
    job = f"""
        import time
        open({str(starts)!r}, "a").write("started\\n")
        print("connection reset by peer", flush=True)
        time.sleep(120)
    """
    processor = '{ kind = "command", argv = ["python", "jobs/hang.py"], timeout_s = 1, batch_size = 4 }'
    path = make_pipeline(tmp_path, processor, {"hang.py": job})
    days = [dt.date(2021, 12, 10) + dt.timedelta(days=n) for n in range(4)]
    began = time.monotonic()
    _, items, _ = run(settings, path, dates=days, max_attempts=4, retry_delays="0", skip_gates=True)
    assert time.monotonic() - began < 1 + 10
    assert starts.read_text().count("started") == 1
    assert {item["status"] for item in items.values()} == {"failed"} and len(items) == 4
    assert all("killed after its 1 s timeout" in item["error_message"] for item in items.values())


def test_an_error_after_writing_exits_1_not_2(settings, tmp_path, capsys):
    """Issue 21, 6: the ledger breaks while the run works (its job overwrites the ledger file, as a
    deleted or damaged file would): the run had written, so the exit is 1, not 'bad input'."""
    from backfill import cli

    job = f"""
        import os
        for name in ({settings.ledger!r}, {settings.ledger + "-wal"!r}, {settings.ledger + "-shm"!r}):
            if os.path.exists(name):
                with open(name, "r+b") as ledger:
                    ledger.write(b"this is not a database any more" * 200)
    """
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/break.py"] }', {"break.py": job}
    )
    code = cli.main(
        ["--pipeline", str(path), "run", "--dates", "2021-12-07", "--stages", "predictions", "--max-attempts", "1"],
        environ={"BACKFILL_CONFIG": os.devnull, "BACKFILL_WAREHOUSE": settings.warehouse,
                 "BACKFILL_LEDGER": settings.ledger},
    )  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1, err
    last = err.strip().splitlines()[-1]  # after the run's own log lines
    assert last.startswith("error: ") and "after writing to the ledger" in last


def test_a_batch_failing_slowly_is_split_only_while_its_time_budget_lasts(settings, tmp_path):
    """Issue 21, 2: halves of a batch whose job fails slowly (permanently) would cost (2N-1) job
    runs. The run's clock here is the jobs' own count: each start is 10 s of the batch's time."""
    starts = tmp_path / "starts"
    starts.write_text("")
    job = f"""
        import sys
        open({str(starts)!r}, "a").write("started\\n")
        sys.exit("the model file is corrupt")
    """
    processor = '{ kind = "command", argv = ["python", "jobs/bad.py"], timeout_s = 15, batch_size = 4 }'
    path = make_pipeline(tmp_path, processor, {"bad.py": job})

    def seconds() -> float:
        return 10.0 * starts.read_text().count("started")

    days = [dt.date(2021, 12, 10) + dt.timedelta(days=n) for n in range(4)]
    loaded = settings.replace(pipeline=load_pipeline(path, environ={}))
    request = BackfillRequest.build(
        loaded,
        dates=days,
        stages="predictions",
        max_attempts=1,
        skip_gates=True,
        today=lambda: dt.date(2026, 11, 30),
    )
    result = launch.run_here(loaded, request, "tester", monotonic=seconds)
    items = {item["game_date"]: item for item in Ledger(settings.ledger).items(result.run_id)}
    # A budget of 15 s (timeout_s x 1 attempt): the batch at 0 s, one half at 10 s; at 20 s the
    # budget is spent, so the rest is not tried. Unbounded, the halving makes 2 x 4 - 1 = 7 runs.
    assert starts.read_text().count("started") == 2
    assert {item["status"] for item in items.values()} == {"failed"} and len(items) == 4


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    line=st.one_of(
        st.text(max_size=80),
        st.fixed_dictionaries(
            {"date": json_values, "status": st.sampled_from(["done", "failed", "other"]) | json_values},
            optional={"error": json_values},
        ).map(json.dumps),
        json_values.map(json.dumps),
    )
)
def test_any_output_line_is_an_outcome_with_a_text_date_or_ordinary_output(line):
    """A job's output is its own: no line makes the reader raise (issue 21, 7)."""
    outcome = _outcome(line)
    assert outcome is None or (isinstance(outcome["date"], str) and outcome["status"] in ("done", "failed"))


def test_a_job_that_writes_a_date_it_was_not_given_is_reported_in_the_run_and_its_log(settings, tmp_path):
    job = WRITE_PREDICTIONS + textwrap.dedent("""
        database = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
        database.execute("DELETE FROM nba_predictions.player_prop_predictions WHERE game_date = DATE '2021-12-08'")
        database.close()
    """)
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    result, items, ledger = run(settings, path, max_attempts=1)
    assert items["2021-12-07"]["status"] == "done"
    with sqlite3.connect(settings.ledger) as database:
        (params,) = database.execute("SELECT params FROM runs WHERE run_id = ?", [result.run_id]).fetchone()
    assert json.loads(params)["writes_outside_dates"] == {"predictions": ["2021-12-08"]}
    assert any(
        "1 dates they were not given changed: 2021-12-08" in event["message"]
        for event in ledger.events(result.run_id)
    )

    well_behaved = make_pipeline(
        tmp_path,
        '{ kind = "command", argv = ["python", "jobs/q.py", "--dates", "{dates}"] }',
        {"q.py": WRITE_PREDICTIONS},
    )
    result, _, _ = run(settings, well_behaved, dates=(dt.date(2021, 12, 10),), max_attempts=1)
    with sqlite3.connect(settings.ledger) as database:
        (params,) = database.execute("SELECT params FROM runs WHERE run_id = ?", [result.run_id]).fetchone()
    assert "writes_outside_dates" not in json.loads(params)
