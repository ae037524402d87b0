"""The command-line interface (SPEC 4.7): commands, output formats, exit codes, bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import subprocess
import sys
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from backfill import cli
from backfill.demo import MISSING_PREDICTION_DATES, THIN_MLFS_DATE

REPO = Path(__file__).resolve().parents[1]

REQUIRED_FIELDS = (
    "period",
    "stage",
    "players_total",
    "players_covered",
    "player_coverage_pct",
    "player_games_total",
    "player_games_covered",
    "player_game_coverage_pct",
    "expected_coverage_pct",
    "status",
)
"""SPEC 4.7: the fields every object of ``coverage --format json`` has."""

PCT_FIELDS = {
    "player_coverage_pct": ("players_covered", "players_total"),
    "player_game_coverage_pct": ("player_games_covered", "player_games_total"),
    "expected_coverage_pct": ("expected_covered", "expected_total"),
}

# The team's own player coverage per month (SPEC 3), written as the team wrote it, independent
# of the backend's SQL.
TEAM_SQL = """
SELECT strftime(pgs.game_date, '%Y-%m') AS month,
  COUNT(DISTINCT pred.player_lookup) AS covered,
  COUNT(DISTINCT pgs.player_lookup) AS total
FROM nba_analytics.player_game_summary AS pgs
LEFT JOIN {table} AS pred
  ON pred.game_date = pgs.game_date AND pred.player_lookup = pgs.player_lookup
GROUP BY month
ORDER BY month
"""
STAGE_TABLES = {
    "predictions": "nba_predictions.player_prop_predictions",
    "mlfs": "nba_precompute.ml_feature_store",
}

# The demo's incident (SPEC 6): the real gaps of December 2021, as (date, stage, status).
INCIDENT_GAPS = {
    (MISSING_PREDICTION_DATES[0].isoformat(), "predictions", "missing"),
    (THIN_MLFS_DATE.isoformat(), "mlfs", "partial"),
    (THIN_MLFS_DATE.isoformat(), "predictions", "blocked"),
}


@pytest.fixture
def run(capsys, tmp_path):
    """Run ``main`` in-process with no stray settings; returns (exit code, stdout, stderr)."""

    def run(*argv: str, environ: dict[str, str] | None = None, today=dt.date.today):
        # A private ledger path (never created unless a command writes): the repository's own
        # data/ledger.sqlite, if a developer has one, must not leak runs into reports.
        isolated = {
            "BACKFILL_CONFIG": os.devnull,
            "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
            **(environ or {}),
        }
        code = cli.main(list(argv), environ=isolated, today=today)
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def fingerprint(path: Path) -> tuple[str, int]:
    """Bytes and modification time of a file, to prove it was not touched."""
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def team_monthly(path: Path, stage: str) -> dict[str, tuple[int, int]]:
    # The adapter's configuration (not read_only): a console test in this process may still hold the
    # shared demo file open, and DuckDB refuses a second open of one file with another configuration.
    with duckdb.connect(str(path)) as connection:
        rows = connection.execute(TEAM_SQL.format(table=STAGE_TABLES[stage])).fetchall()
    return {month: (covered, total) for month, covered, total in rows}


def half_up(covered: int, total: int) -> float:
    return float((Decimal(100 * covered) / Decimal(total)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def coverage_json(run, demo_file: Path, *args: str) -> list[dict]:
    code, out, err = run("coverage", "--warehouse", str(demo_file), "--format", "json", *args)
    assert (code, err) == (0, "")
    return json.loads(out)


# -- help and processes ---------------------------------------------------------------------------


def test_help_in_a_real_process_lists_every_command():
    result = subprocess.run(
        [sys.executable, "-m", "backfill", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    for command in ("demo", "coverage", "gaps"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout


def test_bad_input_in_a_real_process_exits_2_with_one_line(demo_copy):
    before = fingerprint(demo_copy)
    result = subprocess.run(
        [sys.executable, "-m", "backfill", "coverage", "--warehouse", str(demo_copy)]
        + ["--start", "2021-12-31", "--end", "2021-12-01"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr == "error: range is reversed: start 2021-12-31 is after end 2021-12-01\n"
    assert result.stdout == ""
    assert fingerprint(demo_copy) == before


@pytest.mark.parametrize("command", ["demo", "coverage", "gaps"])
def test_every_command_has_help(run, command):
    code, out, _ = run(command, "--help")
    assert code == 0
    assert f"python -m backfill {command}" in out
    assert "--warehouse" in out


# -- coverage -------------------------------------------------------------------------------------


def test_coverage_json_by_month_has_every_field_for_every_month_and_stage(run, demo_file):
    rows = coverage_json(run, demo_file)
    months = set(team_monthly(demo_file, "predictions"))
    assert {(row["period"], row["stage"]) for row in rows} == {
        (month, stage) for month in months for stage in ("mlfs", "predictions")
    }
    for row in rows:
        missing = [field for field in REQUIRED_FIELDS if field not in row]
        assert not missing, (row["period"], row["stage"], missing)
        assert row["status"] in ("ok", "partial", "missing", "blocked", "bootstrap", "no_games")


@pytest.mark.parametrize("stage", ["predictions", "mlfs"])
def test_monthly_player_coverage_equals_the_teams_query(run, demo_file, stage):
    team = team_monthly(demo_file, stage)
    rows = {row["period"]: row for row in coverage_json(run, demo_file, "--stage", stage)}
    assert set(rows) == set(team)
    assert "2021-12" in rows
    for month, (covered, total) in team.items():
        row = rows[month]
        assert (row["players_covered"], row["players_total"]) == (covered, total), month
        assert row["player_coverage_pct"] == half_up(covered, total), month


def test_percentages_have_one_decimal_rounded_half_up(run, demo_file):
    rows = coverage_json(run, demo_file) + coverage_json(run, demo_file, "--by", "date")
    checked = 0
    for row in rows:
        for field, (covered_field, total_field) in PCT_FIELDS.items():
            covered, total, value = row[covered_field], row[total_field], row[field]
            if total == 0:
                assert value is None, (row["period"], field)
                continue
            checked += 1
            assert round(value, 1) == value
            # Never shown as complete when it is not, nor as zero when something is covered.
            assert (value == 100.0) == (covered == total), (row["period"], field)
            assert (value == 0.0) == (covered == 0), (row["period"], field)
            if 0 < covered < total and 0.0 < half_up(covered, total) < 100.0:
                assert value == half_up(covered, total), (row["period"], field)
    assert checked > 100


def test_coverage_by_date_shows_the_missing_and_the_blocked_date(run, demo_file):
    # From November, so that the range holds bootstrap players too.
    rows = coverage_json(run, demo_file, "--by", "date", "--start", "2021-11-01", "--end", "2021-12-31")
    by_key = {(row["period"], row["stage"]): row for row in rows}
    assert len(by_key) == 61 * 2
    assert any(row["bootstrap_player_games"] for row in rows)
    assert by_key[("2021-12-07", "predictions")]["status"] == "missing"
    assert by_key[("2021-12-09", "predictions")]["status"] == "blocked"
    assert by_key[("2021-12-09", "mlfs")]["status"] == "partial"
    assert by_key[("2021-12-24", "predictions")]["status"] == "no_games"
    for row in rows:
        assert all(field in row for field in REQUIRED_FIELDS)
        # A date's distinct players are its player-games.
        assert row["players_total"] == row["player_games_total"]
        assert row["players_covered"] == row["player_games_covered"]


def test_coverage_stage_option_keeps_one_stage(run, demo_file):
    rows = coverage_json(run, demo_file, "--stage", "mlfs")
    assert rows
    assert {row["stage"] for row in rows} == {"mlfs"}


def test_coverage_csv_has_the_json_columns_and_rows(run, demo_file):
    rows = coverage_json(run, demo_file)
    code, out, _ = run("coverage", "--warehouse", str(demo_file), "--format", "csv")
    assert code == 0
    frame = pd.read_csv(io.StringIO(out), dtype={"period": str})
    assert list(frame.columns) == list(rows[0])
    assert frame["period"].tolist() == [row["period"] for row in rows]
    assert frame["players_covered"].tolist() == [row["players_covered"] for row in rows]


def test_coverage_table_is_aligned_text(run, demo_file):
    code, out, _ = run("--warehouse", str(demo_file), "coverage")
    assert code == 0
    lines = out.splitlines()
    december = [line for line in lines if line.startswith("2021-12")]
    assert len(december) == 2
    assert "missing" in december[1] and "predictions" in december[1]
    header = lines[1]
    assert header.index("status") == december[0].index("partial")


def test_warehouse_comes_from_the_environment_and_the_option_wins(run, demo_file, tmp_path):
    code, out, _ = run("coverage", "--format", "json", environ={"BACKFILL_WAREHOUSE": str(demo_file)})
    assert code == 0 and json.loads(out)
    absent = tmp_path / "absent.duckdb"
    code, out, _ = run(
        "coverage",
        "--warehouse",
        str(demo_file),
        "--format",
        "json",
        environ={"BACKFILL_WAREHOUSE": str(absent)},
    )
    assert code == 0 and json.loads(out)
    assert not absent.exists()


def test_max_range_caps_explicit_ranges_but_not_the_whole_data_default(run, demo_file):
    environ = {"BACKFILL_MAX_RANGE_DAYS": "31"}
    code, _, _ = run("coverage", "--warehouse", str(demo_file), environ=environ)
    assert code == 0
    code, _, err = run(
        "coverage",
        "--warehouse",
        str(demo_file),
        "--start",
        "2021-11-01",
        "--end",
        "2021-12-31",
        environ=environ,
    )
    assert code == 2
    assert err == "error: range of 61 days is over the maximum of 31 days\n"


def test_future_dates_are_judged_by_the_injected_clock(run, demo_file):
    code, _, err = run(
        "coverage", "--warehouse", str(demo_file), "--end", "2021-12-31", today=lambda: dt.date(2021, 12, 15)
    )
    assert code == 2
    assert err == "error: end date 2021-12-31 is in the future\n"


# -- bad input ------------------------------------------------------------------------------------

BAD_INPUTS = {
    "bad date": (["--start", "2021-13-01"], "error: --start '2021-13-01' is not a date"),
    "reversed": (["--start", "2021-12-31", "--end", "2021-12-01"], "error: range is reversed"),
    "future": (
        ["--start", "2021-12-01", "--end", "2999-01-01"],
        "error: end date 2999-01-01 is in the future",
    ),
    "future start": (["--start", "2999-01-01"], "error: start date 2999-01-01 is in the future"),
    "unknown stage": (["--stage", "features"], "error: unknown stage 'features'"),
    "over max range": (["--start", "2020-01-01", "--end", "2021-12-31"], "error: range of 731 days is over"),
    "start after the data": (
        ["--start", "2022-06-01"],
        "error: --start 2022-06-01 is after the last game date",
    ),
    "malformed URL": (["--warehouse", "ftp://x"], "error: malformed warehouse URL 'ftp://x'"),
    "URL without project": (["--warehouse", "bigquery://"], "error: malformed warehouse URL 'bigquery://'"),
    "usage error": (["--start"], "error: argument --start: expected one argument"),
}


@pytest.mark.parametrize("command", ["coverage", "gaps"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(run, demo_copy, tmp_path, command, case):
    args, message = BAD_INPUTS[case]
    output = tmp_path / "report.csv"
    extra = ["--output", str(output)] if command == "gaps" else []
    before = fingerprint(demo_copy)
    code, out, err = run(command, "--warehouse", str(demo_copy), *args, *extra)
    assert code == 2
    assert err.startswith(message)
    assert err.count("\n") == 1 and err.endswith("\n")
    assert out == ""
    assert not output.exists()
    assert fingerprint(demo_copy) == before
    # Nothing but the caches beside the ledger (translated SQL: no output, and no answer depends on it).
    assert sorted(path.name for path in tmp_path.iterdir() if path.name != "cache") == ["warehouse.duckdb"]


@pytest.mark.parametrize("name", ["report.txt", "report", "report.csv.bak"])
def test_unknown_report_suffix_exits_2_and_writes_nothing(run, demo_copy, tmp_path, name):
    before = fingerprint(demo_copy)
    code, out, err = run("gaps", "--warehouse", str(demo_copy), "--output", str(tmp_path / name))
    assert code == 2
    assert err.startswith("error: unknown report format") and err.count("\n") == 1
    assert out == ""
    assert not (tmp_path / name).exists()
    assert fingerprint(demo_copy) == before


def test_missing_warehouse_file_is_bad_input_and_is_not_created(run, tmp_path):
    absent = tmp_path / "typo.duckdb"
    code, _, err = run("gaps", "--warehouse", str(absent))
    assert code == 2
    assert err.startswith("error: warehouse file") and err.count("\n") == 1
    assert not absent.exists()


def test_unexpected_error_exits_1_with_one_line_and_debug_shows_the_traceback(run, tmp_path):
    not_duckdb = tmp_path / "notes.duckdb"
    not_duckdb.write_text("not a database\n")
    before = fingerprint(not_duckdb)
    code, out, err = run("coverage", "--warehouse", str(not_duckdb))
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "--debug" in err
    assert out == ""
    assert fingerprint(not_duckdb) == before
    code, _, err = run("coverage", "--warehouse", str(not_duckdb), "--debug")
    assert code == 1
    assert "Traceback" in err


# -- gaps -----------------------------------------------------------------------------------------


def test_gaps_prints_the_gap_dates_and_exits_0(run, demo_file):
    code, out, err = run("gaps", "--warehouse", str(demo_file))
    assert (code, err) == (0, "")
    listed = {tuple(line.split()[:3]) for line in out.splitlines() if line.startswith("2021-")}
    assert listed == INCIDENT_GAPS
    assert "bootstrap dates (expected)" in out


def read_gaps(path: Path) -> set[tuple[str, str, str]]:
    """(date, stage, status) of the real gaps in a report file of any format."""
    suffix = path.suffix
    if suffix == ".csv":
        frame = pd.read_csv(path)
    elif suffix == ".xlsx":
        frame = pd.read_excel(path, sheet_name="Gaps")
        frame["game_date"] = pd.to_datetime(frame["game_date"]).dt.strftime("%Y-%m-%d")
    elif suffix == ".json":
        frame = pd.DataFrame(json.loads(path.read_text())["gaps"])
    else:
        raise AssertionError(suffix)
    real = frame[~frame["expected"].astype(bool)]
    return {(str(d), s, t) for d, s, t in zip(real["game_date"], real["stage"], real["status"])}


@pytest.mark.parametrize("suffix", [".csv", ".json", ".xlsx"])
def test_gaps_output_file_parses_back_to_the_same_gap_dates(run, demo_file, tmp_path, suffix):
    output = tmp_path / f"report{suffix}"
    code, out, err = run("gaps", "--warehouse", str(demo_file), "--output", str(output))
    assert (code, err) == (0, "")
    assert str(output) in out
    assert read_gaps(output) == INCIDENT_GAPS
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []


def test_gaps_xlsx_has_the_report_sheets(run, demo_file, tmp_path):
    output = tmp_path / "report.xlsx"
    assert run("gaps", "--warehouse", str(demo_file), "--output", str(output))[0] == 0
    sheets = pd.read_excel(output, sheet_name=None)
    assert list(sheets) == ["Summary", "Monthly", "Gaps", "Stale rows"]
    assert "2021-12" in sheets["Monthly"]["period"].astype(str).tolist()
    assert sheets["Stale rows"]["rows"].sum() > 0


def test_gaps_markdown_names_every_gap_date_with_its_reason(run, demo_file, tmp_path):
    output = tmp_path / "handoff.md"
    assert run("gaps", "--warehouse", str(demo_file), "--output", str(output))[0] == 0
    text = output.read_text()
    gaps_section = text.split("## Gaps")[1].split("## Stale rows")[0]
    for day, stage, status in INCIDENT_GAPS:
        stage_name = "MLFS" if stage == "mlfs" else stage
        assert f"- {day} {stage_name}: {status}, " in gaps_section
    assert "- 2021-12-07 predictions: missing, no predictions rows" in gaps_section
    assert "Bootstrap dates (expected, not gaps)" in gaps_section
    assert "| 2021-12 |" in text
    assert "## Runs" in text and "No backfill runs are recorded yet" in text


def test_gaps_output_includes_the_runs_of_the_period_from_the_ledger(run, demo_file, tmp_path):
    from backfill.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    day = MISSING_PREDICTION_DATES[0]
    run_id = ledger.create_run(
        params={"dates": [day.isoformat()], "stages": ["predictions"]},
        items=[("predictions", day)],
        created_by="alice@example.com",
        warehouse="demo",
    )
    ledger.record_items(run_id, "predictions", {day: {"status": "failed", "attempts": 4}})
    ledger.finish_run(run_id, "failed", "1 failed")
    assert run("gaps", "--warehouse", str(demo_file), "--output", str(tmp_path / "handoff.md"))[0] == 0
    runs_section = (tmp_path / "handoff.md").read_text().split("## Runs")[1]
    assert f"- {run_id}, by alice@example.com at " in runs_section
    assert "1 item: 0 done, 1 failed, 0 blocked, 1 retried" in runs_section
    assert run("gaps", "--warehouse", str(demo_file), "--output", str(tmp_path / "report.json"))[0] == 0
    (listed,) = json.loads((tmp_path / "report.json").read_text())["runs"]
    assert (listed["run_id"], listed["status"], listed["failed"]) == (run_id, "failed", 1)


def test_gaps_output_without_a_ledger_file_creates_none(run, demo_file, tmp_path):
    absent = tmp_path / "no-such-dir" / "ledger.sqlite"
    output = tmp_path / "report.xlsx"
    code, _, err = run(
        "gaps",
        "--warehouse",
        str(demo_file),
        "--output",
        str(output),
        environ={"BACKFILL_LEDGER": str(absent)},
    )
    assert (code, err) == (0, "")
    assert "Runs" not in pd.read_excel(output, sheet_name=None)
    assert not absent.parent.exists()


def test_gaps_stage_option_reports_one_stage(run, demo_file, tmp_path):
    output = tmp_path / "mlfs.json"
    assert run("gaps", "--warehouse", str(demo_file), "--stage", "mlfs", "--output", str(output))[0] == 0
    assert read_gaps(output) == {gap for gap in INCIDENT_GAPS if gap[1] == "mlfs"}


# -- demo -----------------------------------------------------------------------------------------


def table_contents(path: Path) -> dict[str, pd.DataFrame]:
    with duckdb.connect(str(path)) as connection:  # the adapter's configuration, as in team_monthly
        return {
            table: connection.execute(f"SELECT * FROM {table} ORDER BY ALL").df()
            for table in ("nba_analytics.player_game_summary", *STAGE_TABLES.values())
        }


@pytest.mark.slow  # builds the demo three times
def test_demo_with_the_same_seed_gives_the_same_data_and_another_seed_differs(run, tmp_path):
    builds = {}
    for name, seed in (("first", "7"), ("again", "7"), ("other", "8")):
        path = tmp_path / f"{name}.duckdb"
        code, out, err = run("demo", "--warehouse", str(path), "--seed", seed)
        assert (code, err) == (0, "")
        assert "seasons:  2021-22" in out and "games:" in out and "2021-10-19" in out
        builds[name] = table_contents(path)
    for table, frame in builds["first"].items():
        assert len(frame) > 0
        pd.testing.assert_frame_equal(frame, builds["again"][table])
    other = builds["other"]["nba_analytics.player_game_summary"]
    assert not other.equals(builds["first"]["nba_analytics.player_game_summary"])


def test_demo_into_bigquery_checks_its_input_before_connecting(run, monkeypatch):
    # Building into BigQuery is tested against the emulator (tests/bigquery); here no client may be
    # made at all, so nothing can reach a Google endpoint.
    from backfill.warehouse.bigquery import BigQueryWarehouse

    def no_client(self):
        raise AssertionError("a BigQuery client was made")

    monkeypatch.setattr(BigQueryWarehouse, "_make_client", no_client)
    code, out, err = run("demo", "--warehouse", "bigquery://my-project", "--seasons", "0")
    assert code == 2
    assert err.startswith("error: --seasons must be between 1 and")
    assert err.count("\n") == 1 and out == ""


@pytest.mark.parametrize("args", [["--seasons", "0"], ["--seed", "-1"], ["--seasons", "two"]])
def test_demo_rejects_bad_numbers_and_writes_nothing(run, tmp_path, args):
    path = tmp_path / "demo.duckdb"
    code, _, err = run("demo", "--warehouse", str(path), *args)
    assert code == 2 and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_first_start_builds_the_default_demo_warehouse(run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run("coverage", "--format", "json")
    assert code == 0
    assert err == "note: building the demo warehouse at data/warehouse.duckdb (first start)\n"
    assert (tmp_path / "data" / "warehouse.duckdb").is_file()
    assert {row["period"] for row in json.loads(out)} >= {"2021-10", "2021-12", "2022-04"}
