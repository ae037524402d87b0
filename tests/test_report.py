"""The gap report (SPEC 4.2, 4.6): what it holds, and each writer, on the demo warehouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json

import pandas as pd
import pytest

from backfill import export
from backfill import report as report_module
from backfill.config import Settings
from backfill.errors import BadInput
from backfill.export import to_csv, to_json, to_markdown, to_xlsx, write_report
from backfill.report import COVERAGE_COLUMNS, GAP_COLUMNS, coverage_table, gap_report
from tests.builtin import STAGES

DECEMBER = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))
SEASON = (dt.date(2021, 10, 19), dt.date(2022, 4, 10))
GENERATED_AT = dt.datetime(2022, 7, 20, 9, 30, tzinfo=dt.UTC)
SETTINGS = Settings()


def fixed_clock() -> dt.datetime:
    return GENERATED_AT


@pytest.fixture(scope="module")
def season_report(demo_file):
    from backfill.warehouse.duckdb import DuckDBWarehouse

    warehouse = DuckDBWarehouse(SETTINGS, demo_file)
    try:
        yield gap_report(warehouse, SETTINGS, *SEASON, now=fixed_clock)
    finally:
        warehouse.close()


def gap_row(report, day: str, stage: str) -> pd.Series:
    rows = report.gaps[
        (report.gaps["game_date"] == dt.date.fromisoformat(day)) & (report.gaps["stage"] == stage)
    ]
    assert len(rows) == 1, (day, stage)
    return rows.iloc[0]


# -- what the report holds ------------------------------------------------------------------------


def test_report_holds_period_tables_and_the_injected_time(season_report):
    assert season_report.period == SEASON
    assert season_report.stages == ("mlfs", "predictions")
    assert season_report.generated_at == GENERATED_AT
    assert list(season_report.gaps.columns) == list(GAP_COLUMNS)
    assert list(season_report.monthly.columns) == list(COVERAGE_COLUMNS)
    assert season_report.runs is None
    assert season_report.monthly["period"].tolist()[:2] == ["2021-10", "2021-10"]


def test_real_gaps_are_the_incident_dates_with_one_line_reasons(season_report):
    gaps = season_report.real_gaps
    assert [(f"{d}", s, t) for d, s, t in zip(gaps["game_date"], gaps["stage"], gaps["status"])] == [
        ("2021-12-07", "predictions", "missing"),
        ("2021-12-09", "mlfs", "partial"),
        ("2021-12-09", "predictions", "blocked"),
    ]
    assert not gaps["expected"].any()
    assert gap_row(season_report, "2021-12-07", "predictions")["reason"] == "no predictions rows"
    partial = gap_row(season_report, "2021-12-09", "mlfs")
    missing = partial["expected_total"] - partial["expected_covered"]
    assert missing > 0
    assert partial["reason"] == f"{missing} of {partial['expected_total']} players missing"
    blocked = gap_row(season_report, "2021-12-09", "predictions")
    # The gate's measure is the MLFS row of the same date, shown with one decimal.
    assert blocked["upstream_coverage_pct"] == partial["player_game_coverage_pct"] < 90
    assert blocked["reason"] == f"MLFS covers {partial['player_game_coverage_pct']:.1f}% (gate 90%)"


def test_bootstrap_dates_are_listed_as_expected_and_only_early_season(season_report):
    bootstrap = season_report.bootstrap_dates
    assert len(bootstrap) > 10
    assert set(bootstrap["status"]) == {"bootstrap"}
    assert bootstrap["expected"].all()
    assert {day.month for day in bootstrap["game_date"]} <= {10, 11}
    for row in bootstrap.itertuples():
        uncovered = row.players_total - row.players_covered
        assert row.reason.startswith(f"{uncovered} bootstrap player"), row
        assert row.reason.endswith("(expected)")


def test_stale_rows_cover_every_category(season_report):
    assert set(season_report.stale["category"]) == {
        "orphan",
        "duplicate",
        "outdated",
        "old_version",
        "null_field",
    }
    assert (season_report.stale["rows"] > 0).all()


def test_one_stage_report_keeps_only_that_stage(read_only_demo):
    warehouse = read_only_demo
    report = gap_report(warehouse, SETTINGS, *DECEMBER, stage="mlfs", now=fixed_clock)
    assert set(report.monthly["stage"]) == {"mlfs"}
    assert set(report.gaps["stage"]) == {"mlfs"}
    assert set(report.stale["table_name"]) == {"ml_feature_store"}
    with pytest.raises(BadInput, match="unknown stage"):
        gap_report(warehouse, SETTINGS, *DECEMBER, stage="features")


def test_coverage_table_by_date_has_off_days_without_percentages(read_only_demo):
    table = coverage_table(read_only_demo, SETTINGS, *DECEMBER, by="date", stage="predictions")
    christmas_eve = table[table["period"] == "2021-12-24"].iloc[0]
    assert christmas_eve["status"] == "no_games"
    assert pd.isna(christmas_eve["player_game_coverage_pct"])
    rows = report_module.records(table)
    assert next(r for r in rows if r["period"] == "2021-12-24")["player_game_coverage_pct"] is None


def test_coverage_table_refuses_an_unknown_grouping(read_only_demo):
    with pytest.raises(BadInput, match="unknown grouping"):
        coverage_table(read_only_demo, SETTINGS, *DECEMBER, by="week")


# -- writers --------------------------------------------------------------------------------------


def test_csv_is_the_gaps_table(season_report):
    frame = pd.read_csv(io.StringIO(to_csv(season_report)))
    assert list(frame.columns) == list(GAP_COLUMNS)
    assert len(frame) == len(season_report.gaps)
    assert frame["expected"].sum() == len(season_report.bootstrap_dates)


def test_json_has_every_section_with_iso_dates(season_report):
    document = json.loads(to_json(season_report))
    assert document["period"] == {"start": "2021-10-19", "end": "2022-04-10"}
    assert document["generated_at"] == "2022-07-20T09:30:00+00:00"
    assert len(document["monthly"]) == len(season_report.monthly)
    assert len(document["gaps"]) == len(season_report.gaps)
    assert document["gaps"][0]["game_date"] == "2021-10-19"
    # The season as the CSV and people write it (the demo's one season starts in October 2021).
    assert {row["season"] for row in document["gaps"] + document["monthly"]} == {"2021-22"}
    assert {row["game_date"] for row in document["stale_rows"]} == {
        f"{d}" for d in season_report.stale["game_date"]
    }
    assert document["runs"] is None


def test_markdown_reads_like_the_hand_off_note(season_report):
    text = to_markdown(season_report)
    assert text.startswith("# Prediction coverage report: 2021-10-19 to 2022-04-10\n")
    assert "Generated: 2022-07-20 09:30 UTC" in text
    predictions = season_report.monthly[season_report.monthly["stage"] == "predictions"]
    for row in predictions.itertuples():
        line = next(line for line in text.splitlines() if line.startswith(f"| {row.period} |"))
        assert f"| {row.player_coverage_pct:.1f}% | {row.players_covered:,} / {row.players_total:,} |" in line
    december = next(line for line in text.splitlines() if line.startswith("| 2021-12 |"))
    assert "Dec 07 missing" in december and "MLFS: 1 gap date: Dec 09 partial" in december
    assert "- 2021-12-09 predictions: blocked, MLFS covers" in text
    bootstrap = season_report.bootstrap_dates
    assert (
        f"Bootstrap dates (expected, not gaps): {len(bootstrap)} predictions dates from "
        f"{bootstrap['game_date'].min()} to {bootstrap['game_date'].max()}."
    ) in text
    for row in season_report.stale.itertuples():
        assert f"| {row.game_date} | {row.table_name} | {row.category} | {row.rows} |" in text
    assert text.split("## Runs")[1].strip().startswith("No backfill runs are recorded yet")


def test_markdown_shows_runs_when_a_ledger_passes_them_in(season_report):
    runs = pd.DataFrame({"run_id": ["r1"], "status": ["succeeded"], "dates": [30]})
    with_runs = dataclasses.replace(season_report, runs=runs)
    runs_section = to_markdown(with_runs).split("## Runs")[1]
    assert "| run_id | status | dates |" in runs_section
    assert "| r1 | succeeded | 30 |" in runs_section


def test_xlsx_has_summary_monthly_gaps_and_stale_sheets(season_report):
    sheets = pd.read_excel(io.BytesIO(to_xlsx(season_report)), sheet_name=None)
    assert list(sheets) == ["Summary", "Monthly", "Gaps", "Stale rows"]
    assert len(sheets["Gaps"]) == len(season_report.gaps)
    assert len(sheets["Monthly"]) == len(season_report.monthly)
    summary = dict(zip(sheets["Summary"]["Item"], sheets["Summary"]["Value"]))
    assert summary["Gaps (date and stage)"] == 3
    assert summary["Gap dates"] == 2
    assert summary["Period start"] == "2021-10-19"


def test_xlsx_headers_are_styled_and_frozen_percentages_are_numbers_and_statuses_coloured(season_report):
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(to_xlsx(season_report)))
    gaps = book["Gaps"]
    headers = [cell.value for cell in gaps[1]]
    assert gaps.freeze_panes == "A2"
    assert all(cell.font.bold for cell in gaps[1])
    assert gaps.column_dimensions["A"].width >= len("game_date")
    pct = headers.index("player_game_coverage_pct") + 1
    status = headers.index("status") + 1
    season = headers.index("season") + 1
    for row, gap in enumerate(season_report.gaps.itertuples(), start=2):
        cell = gaps.cell(row=row, column=pct)
        assert cell.number_format == "0.0%"
        assert cell.value == pytest.approx(gap.player_game_coverage_pct / 100)
        assert gaps.cell(row=row, column=season).value == f"{gap.season}-{(gap.season + 1) % 100:02d}"
    colours = {
        gaps.cell(row=row, column=status).value: gaps.cell(row=row, column=status).fill.fgColor.rgb
        for row in range(2, gaps.max_row + 1)
    }
    assert len(set(colours.values())) == len(colours) > 1, "each status its own colour"
    assert all(book[name].freeze_panes == "A2" for name in book.sheetnames)


def test_csv_names_the_season_as_people_write_it(season_report):
    frame = pd.read_csv(io.StringIO(to_csv(season_report)), dtype={"season": str})
    assert set(frame["season"]) == {"2021-22"}  # the demo's one season, October 2021 to April 2022


# -- writing files --------------------------------------------------------------------------------


def test_write_report_refuses_an_unknown_suffix_and_writes_nothing(season_report, tmp_path):
    with pytest.raises(BadInput, match="unknown report format '.txt'"):
        write_report(season_report, tmp_path / "report.txt")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(season_report, tmp_path, monkeypatch):
    target = tmp_path / "report.json"
    target.write_text("previous report\n")

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(season_report, target)
    assert target.read_text() == "previous report\n"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_written_report_is_complete_and_readable_by_others(season_report, tmp_path):
    target = write_report(season_report, tmp_path / "report.md")
    assert target.read_text() == to_markdown(season_report)
    assert target.stat().st_mode & 0o644 == 0o644


# -- runs and their outcomes (from the run ledger) ------------------------------------------------

DEC_7, DEC_9 = dt.date(2021, 12, 7), dt.date(2021, 12, 9)


def record_run(ledger, at, who, dates, stages, outcomes, *, status, parent=None, message=None):
    """A finished run as the runner leaves it: items with status and attempts, the run's end."""
    ledger.clock = lambda: at
    run_id = ledger.create_run(
        params={"dates": [day.isoformat() for day in dates], "stages": list(stages)},
        items=[(stage, day) for day in dates for stage in stages],
        created_by=who,
        warehouse="DuckDB file demo",
        parent_run_id=parent,
        run_id=f"{at:%Y%m%d-%H%M%S}-{who[:3]}",
    )
    ledger.start_run(run_id)
    for stage in stages:
        ledger.record_items(run_id, stage, {day: outcomes[(stage, day)] for day in dates})
    ledger.finish_run(run_id, status, message)
    return run_id


@pytest.fixture
def ledger_with_runs(tmp_path):
    """The incident's runs: December 7-9 (MLFS retried, 12-09 predictions blocked), a rerun, November."""
    from backfill.ledger import Ledger

    ledger = Ledger(tmp_path / "ledger.sqlite")
    done, retried = {"status": "done", "attempts": 1}, {"status": "done", "attempts": 3}
    blocked = {"status": "blocked", "attempts": 0, "error_class": "blocked"}
    first = record_run(
        ledger,
        dt.datetime(2022, 7, 16, 10, 15, tzinfo=dt.UTC),
        "alice@example.com",
        [DEC_7, DEC_9],
        ("mlfs", "predictions"),
        {
            ("mlfs", DEC_7): done,
            ("mlfs", DEC_9): retried,
            ("predictions", DEC_7): done,
            ("predictions", DEC_9): blocked,
        },
        status="blocked",
        message="3 done, 1 blocked",
    )
    record_run(
        ledger,
        dt.datetime(2022, 7, 16, 11, 0, tzinfo=dt.UTC),
        "bob@example.com",
        [DEC_9],
        ("predictions",),
        {("predictions", DEC_9): done},
        status="succeeded",
        parent=first,
    )
    november = dt.date(2021, 11, 2)
    record_run(
        ledger,
        dt.datetime(2022, 7, 17, 9, 0, tzinfo=dt.UTC),
        "alice@example.com",
        [november],
        ("mlfs",),
        {("mlfs", november): done},
        status="succeeded",
    )
    return ledger


def test_runs_table_lists_the_runs_of_the_period_newest_first_with_outcomes(ledger_with_runs):
    runs = report_module.runs_table(ledger_with_runs, *DECEMBER, STAGES)
    assert list(runs.columns) == list(report_module.RUN_COLUMNS)
    assert runs["run_id"].tolist() == ["20220716-110000-bob", "20220716-101500-ali"]  # not November's
    rerun, first = runs.iloc[0], runs.iloc[1]
    assert (rerun["created_by"], rerun["status"], rerun["rerun_of"]) == (
        "bob@example.com",
        "succeeded",
        first["run_id"],
    )
    assert (first["first_date"], first["last_date"], first["dates"], first["stages"]) == (
        DEC_7,
        DEC_9,
        2,
        "mlfs, predictions",
    )
    assert (first["items"], first["done"], first["failed"], first["blocked"], first["other"]) == (
        4,
        3,
        0,
        1,
        0,
    )
    assert first["retried"] == 1
    assert first["created_at"].startswith("2022-07-16T10:15")


def test_runs_table_keeps_only_runs_of_the_report_stages(ledger_with_runs):
    runs = report_module.runs_table(ledger_with_runs, *DECEMBER, stages=("mlfs",))
    assert runs["run_id"].tolist() == ["20220716-101500-ali"]
    assert report_module.runs_table(ledger_with_runs, dt.date(2022, 1, 1), dt.date(2022, 1, 31), STAGES).empty


def test_ledger_runs_is_none_without_a_ledger_and_creates_no_file(tmp_path):
    absent = tmp_path / "nowhere" / "ledger.sqlite"
    assert report_module.ledger_runs(absent, *DECEMBER, STAGES) is None
    assert not absent.parent.exists()


def test_an_unreadable_ledger_is_one_backfill_error(tmp_path):
    from backfill.errors import BackfillError

    broken = tmp_path / "ledger.sqlite"
    broken.write_text("not a database\n")
    with pytest.raises(BackfillError, match="cannot be read"):
        report_module.ledger_runs(broken, *DECEMBER, STAGES)


def test_hand_off_note_says_who_ran_what_and_how_it_ended(season_report, ledger_with_runs):
    runs = report_module.ledger_runs(ledger_with_runs.path, *DECEMBER, STAGES)
    text = to_markdown(dataclasses.replace(season_report, runs=runs))
    section = text.split("## Runs")[1]
    assert "2 runs touched this period (1 succeeded, 1 blocked), newest first:" in section
    assert (
        "- 20220716-101500-ali, by alice@example.com at 2022-07-16 10:15 UTC: **blocked**. "
        "2 dates (2021-12-07 to 2021-12-09), mlfs, predictions; 4 items: 3 done, 0 failed, 1 blocked, "
        "1 retried (3 done, 1 blocked)"
    ) in section
    assert "- 20220716-110000-bob (rerun of 20220716-101500-ali), by bob@example.com" in section
    assert "1 date (2021-12-09), predictions; 1 item: 1 done, 0 failed, 0 blocked" in section


def test_json_and_xlsx_carry_the_runs(season_report, ledger_with_runs):
    runs = report_module.runs_table(ledger_with_runs, *DECEMBER, STAGES)
    with_runs = dataclasses.replace(season_report, runs=runs)
    document = json.loads(to_json(with_runs))
    assert [run["run_id"] for run in document["runs"]] == runs["run_id"].tolist()
    assert document["runs"][1]["first_date"] == "2021-12-07"
    sheets = pd.read_excel(io.BytesIO(to_xlsx(with_runs)), sheet_name=None)
    assert list(sheets) == ["Summary", "Monthly", "Gaps", "Stale rows", "Runs"]
    assert sheets["Runs"]["blocked"].tolist() == [0, 1]
