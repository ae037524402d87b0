"""The gap report (SPEC 4.2, 4.6): what it holds, and each writer, on the demo warehouse."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json

import pandas as pd
import pytest

from backfill import report as report_module
from backfill.config import Settings
from backfill.errors import BadInput
from backfill.report import (
    COVERAGE_COLUMNS,
    GAP_COLUMNS,
    coverage_table,
    gap_report,
    to_csv,
    to_json,
    to_markdown,
    to_xlsx,
    write_report,
)

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

    monkeypatch.setattr(report_module.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_report(season_report, target)
    assert target.read_text() == "previous report\n"
    assert [path.name for path in tmp_path.iterdir()] == ["report.json"]


def test_written_report_is_complete_and_readable_by_others(season_report, tmp_path):
    target = write_report(season_report, tmp_path / "report.md")
    assert target.read_text() == to_markdown(season_report)
    assert target.stat().st_mode & 0o644 == 0o644
