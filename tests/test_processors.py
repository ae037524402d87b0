"""Processors (SPEC 7.2): the team's command and Python jobs run under the console's gate, retry and
verification, on a real DuckDB demo copy. Job scripts are written to a temporary pipeline folder."""

from __future__ import annotations

import datetime as dt
import json
import os
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from backfill import launch
from backfill.ledger import Ledger
from backfill.pipeline import load_pipeline
from backfill.request import BackfillRequest

TODAY = lambda: dt.date(2026, 11, 30)  # noqa: E731
DEC_7, DEC_8 = dt.date(2021, 12, 7), dt.date(2021, 12, 8)

PIPELINE = """
[pipeline]
reference = "played"

[stages.played]
table = "nba_analytics.player_game_summary"

[stages.mlfs]
label = "MLFS"
table = "nba_precompute.ml_feature_store"
upstream = "played"
bootstrap_min_history = 3
processor = {{ kind = "sql", builtin = "mlfs" }}

[stages.predictions]
label = "predictions"
table = "nba_predictions.player_prop_predictions"
upstream = "mlfs"
gate_min_upstream_pct = 90
bootstrap_min_history = 3
written_at_column = "created_at"
duplicate_key = ["game_date", "player_lookup", "system_id"]
processor = {processor}
"""

# A job as a team writes one: its own SQL, straight to the warehouse file the console names.
WRITE_PREDICTIONS = """
import os, sys, duckdb
dates = sys.argv[sys.argv.index("--dates") + 1].split(",")
database = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
database.execute(
    "DELETE FROM nba_predictions.player_prop_predictions WHERE CAST(game_date AS VARCHAR) IN (SELECT UNNEST($d))",
    {"d": dates},
)
database.execute(
    "INSERT INTO nba_predictions.player_prop_predictions "
    "SELECT game_date, player_lookup, 'weighted_form', COALESCE(points_avg_season, 0), 'form_v2', processed_at, now() "
    "FROM nba_precompute.ml_feature_store WHERE CAST(game_date AS VARCHAR) IN (SELECT UNNEST($d)) AND history_games >= 3",
    {"d": dates},
)
database.close()
print("wrote", len(dates), "dates")
"""


def make_pipeline(folder: Path, processor: str, jobs: dict[str, str]) -> Path:
    (folder / "jobs").mkdir(exist_ok=True)
    for name, body in jobs.items():
        (folder / "jobs" / name).write_text(textwrap.dedent(body))
    path = folder / "pipeline.toml"
    path.write_text(PIPELINE.format(processor=processor))
    return path


def run(settings, pipeline_path: Path, dates=(DEC_7,), **request_fields):
    settings = settings.replace(pipeline=load_pipeline(pipeline_path, environ={}))
    request = BackfillRequest.build(
        settings, dates=list(dates), stages="predictions", today=TODAY, **request_fields
    )
    result = launch.run_here(settings, request, "tester")
    ledger = Ledger(settings.ledger)
    return result, {item["game_date"]: item for item in ledger.items(result.run_id)}, ledger


def prediction_rows(settings, day: dt.date) -> int:
    with duckdb.connect(settings.warehouse, read_only=True) as database:
        return database.execute(
            "SELECT COUNT(*) FROM nba_predictions.player_prop_predictions WHERE game_date = ?", [day]
        ).fetchone()[0]


def expected_players(settings, day: dt.date) -> int:
    """Players of the date with three earlier games this season: who should have a prediction."""
    with duckdb.connect(settings.warehouse, read_only=True) as database:
        return database.execute(
            """SELECT COUNT(*) FROM (
                 SELECT game_date, ROW_NUMBER() OVER (PARTITION BY player_lookup ORDER BY game_date) - 1 AS h
                 FROM (SELECT DISTINCT game_date, player_lookup FROM nba_analytics.player_game_summary
                       WHERE game_date BETWEEN DATE '2021-08-01' AND ?)) WHERE game_date = ? AND h >= 3""",
            [day, day],
        ).fetchone()[0]


def test_a_command_job_gets_its_dates_and_context_and_verification_marks_the_date_done(settings, tmp_path):
    seen = tmp_path / "seen.json"
    job = WRITE_PREDICTIONS + textwrap.dedent(f"""
        import json
        json.dump({{"argv": sys.argv, "executable": sys.executable, "cwd": os.getcwd(),
                   "env": {{k: v for k, v in os.environ.items() if k.startswith("BACKFILL_")}},
                   "dates_file": open(sys.argv[sys.argv.index("--file") + 1]).read()}}, open({str(seen)!r}, "w"))
    """)
    processor = '{ kind = "command", argv = ["python", "jobs/predict.py", "--dates", "{dates}", "--from", "{start}", "--to", "{end}", "--file", "{dates_file}"] }'
    path = make_pipeline(tmp_path, processor, {"predict.py": job})
    result, items, _ = run(settings, path, dates=(DEC_7, DEC_8))
    assert result.status == "succeeded"
    for day in (DEC_7, DEC_8):
        item = items[day.isoformat()]
        assert (item["status"], item["attempts"]) == ("done", 1)
        assert item["rows_written"] == expected_players(settings, day)  # one system per player
    job_saw = json.loads(seen.read_text())
    assert job_saw["argv"][1:] == [
        "--dates", "2021-12-07,2021-12-08", "--from", "2021-12-07", "--to", "2021-12-08", "--file", job_saw["argv"][-1],
    ]  # fmt: skip
    assert job_saw["dates_file"] == "2021-12-07\n2021-12-08\n"
    assert Path(job_saw["cwd"]) == tmp_path  # the pipeline file's folder
    assert Path(job_saw["executable"]).parent == Path(os.sys.executable).parent  # the console's own Python
    assert job_saw["env"]["BACKFILL_DATES"] == "2021-12-07,2021-12-08"
    assert job_saw["env"]["BACKFILL_STAGE"] == "predictions"
    assert job_saw["env"]["BACKFILL_RUN_ID"] == result.run_id
    assert Path(job_saw["env"]["BACKFILL_WAREHOUSE"]) == Path(settings.warehouse).resolve()


def test_a_job_that_exits_1_with_connection_reset_is_transient_and_retried(settings, tmp_path):
    job = """
        import sys
        print("loading features")
        print("ERROR: [Errno 104] Connection reset by peer", file=sys.stderr)
        sys.exit(1)
    """
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/flaky.py"] }', {"flaky.py": job}
    )
    result, items, ledger = run(settings, path, max_attempts=3, retry_delays="0,0")
    item = items["2021-12-07"]
    assert (item["status"], item["error_class"], item["attempts"]) == ("failed", "transient", 3)
    assert (
        "exited with status 1" in item["error_message"]
        and "Connection reset by peer" in item["error_message"]
    )
    assert any(
        "predictions job: loading features" in event["message"] for event in ledger.events(result.run_id)
    )
    assert prediction_rows(settings, DEC_7) == 0  # as before: the job wrote nothing


def test_a_job_killed_by_its_timeout_takes_its_children_with_it(settings, tmp_path):
    child_pid = tmp_path / "child.pid"
    job = f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        open({str(child_pid)!r}, "w").write(str(child.pid))
        print("computing predictions", flush=True)
        time.sleep(120)
    """
    processor = '{ kind = "command", argv = ["python", "jobs/slow.py"], timeout_s = 1 }'
    path = make_pipeline(tmp_path, processor, {"slow.py": job})
    began = time.monotonic()
    result, items, _ = run(settings, path, max_attempts=1)
    assert time.monotonic() - began < 60
    item = items["2021-12-07"]
    # The last lines carry no transient keyword: a timeout the job did not explain is permanent.
    assert (item["status"], item["error_class"]) == ("failed", "permanent")
    assert (
        "killed after its 1 s timeout" in item["error_message"]
        and "computing predictions" in item["error_message"]
    )
    pid = int(child_pid.read_text())
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), "the job's child outlived the timeout"


def test_a_job_that_exits_0_without_writing_fails_as_incomplete_with_its_coverage(settings, tmp_path):
    path = make_pipeline(
        tmp_path,
        '{ kind = "command", argv = ["python", "jobs/noop.py"] }',
        {"noop.py": "print('nothing to do')\n"},
    )
    result, items, _ = run(settings, path)
    item = items["2021-12-07"]
    assert (item["status"], item["error_class"]) == ("failed", "incomplete")
    assert item["coverage_before"] == item["coverage_after"] == 0.0  # the demo lost Dec 7's predictions
    assert "the command processor finished but the date is missing" in item["error_message"]
    assert result.exit_code == 1


def test_a_job_may_report_per_date_outcomes_as_json_lines(settings, tmp_path):
    job = WRITE_PREDICTIONS + textwrap.dedent("""
        import json
        print(json.dumps({"date": "2021-12-07", "status": "done"}))
        print(json.dumps({"date": "2021-12-08", "status": "failed", "error": "upstream service unavailable"}))
    """)
    path = make_pipeline(
        tmp_path, '{ kind = "command", argv = ["python", "jobs/p.py", "--dates", "{dates}"] }', {"p.py": job}
    )
    _, items, _ = run(settings, path, dates=(DEC_7, DEC_8))
    assert items["2021-12-07"]["status"] == "done"
    failed = items["2021-12-08"]
    assert (failed["status"], failed["error_class"]) == ("failed", "transient")
    assert "upstream service unavailable" in failed["error_message"]


def test_batches_run_up_to_max_parallel_at_once(settings, tmp_path):
    # Each job waits until the other has started: run one at a time, the first would give up.
    rendezvous = tmp_path / "rendezvous"
    rendezvous.mkdir()
    job = textwrap.dedent(f"""
        import os, pathlib, sys, time, duckdb
        dates = sys.argv[sys.argv.index("--dates") + 1].split(",")
        folder = pathlib.Path({str(rendezvous)!r})
        (folder / dates[0]).touch()
        deadline = time.monotonic() + 20
        while len(list(folder.iterdir())) < 2:
            if time.monotonic() > deadline:
                sys.exit("the other batch never started")
            time.sleep(0.02)
        while True:  # the other job may hold the file for a moment
            try:
                database = duckdb.connect(os.environ["BACKFILL_WAREHOUSE"])
                break
            except duckdb.IOException:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        database.execute(
            "INSERT INTO nba_predictions.player_prop_predictions SELECT game_date, player_lookup, 'weighted_form', "
            "0, 'form_v2', processed_at, now() FROM nba_precompute.ml_feature_store "
            "WHERE CAST(game_date AS VARCHAR) = $d AND history_games >= 3", {{"d": dates[0]}})
        database.close()
    """)
    processor = '{ kind = "command", argv = ["python", "jobs/par.py", "--dates", "{dates}"], batch_size = 1, max_parallel = 2 }'
    path = make_pipeline(tmp_path, processor, {"par.py": job})
    with duckdb.connect(settings.warehouse) as database:  # Dec 8 starts empty too, like Dec 7
        database.execute("DELETE FROM nba_predictions.player_prop_predictions WHERE game_date = ?", [DEC_8])
    result, items, _ = run(settings, path, dates=(DEC_7, DEC_8), max_attempts=1)
    assert {day: item["status"] for day, item in items.items()} == {
        "2021-12-07": "done",
        "2021-12-08": "done",
    }
    assert sorted(path.name for path in rendezvous.iterdir()) == ["2021-12-07", "2021-12-08"]


def test_a_python_function_processor_writes_through_the_context_and_its_errors_are_classified(
    settings, tmp_path
):
    module = """
        def predict(dates, context):
            context.log(f"predicting {len(dates)} dates for run {context.run_id}")
            context.warehouse.execute(
                "INSERT INTO {predictions} SELECT game_date, player_lookup, 'weighted_form', 0.0, 'form_v2', "
                "processed_at, @now FROM {mlfs} WHERE game_date IN UNNEST(@dates) AND history_games >= 3",
                {"dates": dates, "now": context.now},
            )

        def broken(dates, context):
            raise ConnectionResetError("peer went away")
    """
    path = make_pipeline(tmp_path, '{ kind = "python", function = "team_jobs:predict" }', {})
    (tmp_path / "team_jobs.py").write_text(textwrap.dedent(module))
    result, items, ledger = run(settings, path)
    assert items["2021-12-07"]["status"] == "done"
    assert items["2021-12-07"]["rows_written"] == expected_players(settings, DEC_7)
    assert any("predicting 1 dates for run" in event["message"] for event in ledger.events(result.run_id))

    path.write_text(path.read_text().replace("team_jobs:predict", "team_jobs:broken"))
    _, items, _ = run(settings, path, dates=(DEC_8,), max_attempts=2, retry_delays="0")
    assert (items["2021-12-08"]["error_class"], items["2021-12-08"]["attempts"]) == ("transient", 2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _no_pipeline_from_the_environment(monkeypatch):
    monkeypatch.delenv("BACKFILL_PIPELINE", raising=False)
