"""The gap report's files: CSV, JSON, Markdown (the team's hand-off note) and Excel.

Each writer turns one :class:`backfill.report.GapReport` into text or bytes;
:func:`write_report` picks the writer by the file's suffix and writes the file atomically, so a
failure never leaves half a file.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from backfill.coverage import GAP_STATUSES
from backfill.errors import BadInput
from backfill.report import RUN_COLUMNS, STALE_COLUMNS, GapReport, plain, plural, records
from backfill.seasons import season_label

REPORT_SUFFIXES = (".csv", ".json", ".md", ".xlsx")
"""File suffixes :func:`write_report` knows, each picking one writer."""


def _seasons_named(frame: pd.DataFrame) -> pd.DataFrame:
    """The ``season`` column as people write it (``2021-22``), not as its starting year."""
    if "season" not in frame.columns:
        return frame
    return frame.assign(season=[season_label(int(season)) for season in frame["season"]])


def to_csv(report: GapReport) -> str:
    """The gaps table (gap and bootstrap dates) as CSV; the other tables are in JSON, Markdown, Excel."""
    return _seasons_named(report.gaps).to_csv(index=False, lineterminator="\n")


def to_json(report: GapReport) -> str:
    """The whole report as one JSON document (dates as ISO strings)."""
    start, end = report.period
    document = {
        "period": {"start": start.isoformat(), "end": end.isoformat()},
        "stages": list(report.stages),
        "generated_at": report.generated_at.isoformat(),
        "warehouse": report.warehouse,
        "thresholds": {
            "ok_pct": report.ok_pct,
            **{f"min_{upstream}_coverage_pct": pct for upstream, pct in report.gates.items()},
            "min_history_games": report.min_history_games,
        },
        "monthly": records(_seasons_named(report.monthly)),
        "gaps": records(_seasons_named(report.gaps)),
        "stale_rows": records(report.stale),
        "runs": None if report.runs is None else records(report.runs),
        # Only where the period held no games, so a report of real data reads as it always did.
        **({"note": report.no_data} if report.no_data else {}),
    }
    return json.dumps(document, indent=2) + "\n"


def _cell(value: Any) -> str:
    value = plain(value)
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value: Any) -> str:
    return "-" if plain(value) is None else f"{value:.1f}%"


def _month_rows(report: GapReport) -> tuple[list[str], list[list[Any]]]:
    """The team's monthly table: the headline (last) stage's player coverage, its upstream beside it
    (MLFS beside predictions)."""
    pipeline = report.pipeline
    main = report.stages[-1]
    upstream = pipeline.upstream(pipeline.stage(main)).name
    by_stage = {stage: frame.set_index("period") for stage, frame in report.monthly.groupby("stage")}
    headers = ["Month", "Coverage", "Covered / total players", "Player-game coverage", "Expected coverage"]
    with_upstream = upstream in by_stage
    if with_upstream:
        headers.append(f"{pipeline.label(upstream)} coverage")
    headers.append("Status note")
    rows = []
    for period, row in by_stage.get(main, pd.DataFrame()).iterrows():
        cells = [
            period,
            _percent(row["player_coverage_pct"]),
            f"{row['players_covered']:,} / {row['players_total']:,}",
            _percent(row["player_game_coverage_pct"]),
            _percent(row["expected_coverage_pct"]),
        ]
        note = row["note"]
        if with_upstream:
            up = by_stage[upstream].loc[period]
            cells.append(
                f"{_percent(up['player_coverage_pct'])} ({up['players_covered']:,} / {up['players_total']:,})"
            )
            if up["status"] in GAP_STATUSES:
                note = f"{pipeline.label(main)}: {note}; {pipeline.label(upstream)}: {up['note']}"
        rows.append([*cells, note])
    return headers, rows


def _bootstrap_line(report: GapReport) -> str:
    bootstrap = report.bootstrap_dates
    if bootstrap.empty:
        return "No bootstrap dates in this period."
    parts = [
        f"{plural(len(group), report.labels[stage] + ' date')} from {group['game_date'].min()} "
        f"to {group['game_date'].max()}"
        for stage, group in bootstrap.groupby("stage", sort=False)
    ]
    return (
        f"Bootstrap dates (expected, not gaps): {'; '.join(parts)}. On these dates the only players "
        f"without a row had fewer than {report.min_history_games} earlier games this season."
    )


def _moment(text: Any) -> str:
    """``2021-12-10 10:15 UTC`` from a ledger timestamp (ISO, UTC)."""
    try:
        return f"{dt.datetime.fromisoformat(str(text)).astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    except ValueError:
        return str(text)


def _run_line(run: Any) -> str:
    """One hand-off line per run: who, when, what, and how it ended."""
    span = str(run.first_date) if run.first_date == run.last_date else f"{run.first_date} to {run.last_date}"
    outcome = [f"{run.done} done", f"{run.failed} failed", f"{run.blocked} blocked"]
    if run.other:
        outcome.append(f"{run.other} other")
    if run.retried:
        outcome.append(f"{run.retried} retried")
    rerun = f" (rerun of {run.rerun_of})" if plain(run.rerun_of) else ""
    message = f" ({' '.join(str(run.message).split())})" if plain(run.message) else ""
    return (
        f"- {run.run_id}{rerun}, by {run.created_by} at {_moment(run.created_at)}: **{run.status}**. "
        f"{plural(int(run.dates), 'date')} ({span}), {run.stages}; "
        f"{plural(int(run.items), 'item')}: {', '.join(outcome)}{message}"
    )


def _runs_section(runs: pd.DataFrame | None) -> str:
    if runs is None:
        return "No backfill runs are recorded yet (no run ledger)."
    if runs.empty:
        return "No backfill runs in this period."
    if set(RUN_COLUMNS) <= set(runs.columns):
        statuses = runs["status"].value_counts()
        summary = ", ".join(f"{count} {status}" for status, count in statuses.items())
        return "\n".join(
            [f"{plural(len(runs), 'run')} touched this period ({summary}), newest first:", ""]
            + [_run_line(run) for run in runs.itertuples()]
        )
    return markdown_table(list(runs.columns), runs.values.tolist())


def to_markdown(report: GapReport) -> str:
    """The report as the team's hand-off note: period, coverage, gaps with reasons, stale rows, runs."""
    start, end = report.period
    seasons = sorted({season_label(s) for s in report.monthly["season"]})
    gaps = report.real_gaps
    headers, month_rows = _month_rows(report)
    lines = [
        f"# Prediction coverage report: {start} to {end}",
        "",
        f"- Period: {start} to {end} (season {', '.join(seasons) or '-'})",
        f"- Stages: {', '.join(report.labels[s] for s in report.stages)}",
        f"- Warehouse: {report.warehouse}",
        f"- Generated: {report.generated_at:%Y-%m-%d %H:%M} UTC",
        f"- Gaps: {len(gaps)} on {plural(gaps['game_date'].nunique(), 'date')}; "
        f"bootstrap dates (expected): {len(report.bootstrap_dates)}; stale rows: {int(report.stale['rows'].sum()):,}",
        *([f"- Note: {report.no_data}"] if report.no_data else []),
        "",
        "## Coverage by month",
        "",
        "Coverage is the team's player coverage: distinct players with at least one row in the month "
        "over distinct players who played. Player-game coverage counts (date, player) rows; expected "
        f"coverage leaves bootstrap players out. A date is complete at {report.ok_pct:g}% expected coverage.",
        "",
        markdown_table(headers, month_rows),
        "",
        "## Gaps",
        "",
    ]
    if gaps.empty:
        lines.append("No gaps: every date with games is complete.")
    else:
        for row in gaps.itertuples():
            lines.append(f"- {row.game_date} {report.labels[row.stage]}: {row.status}, {row.reason}")
    lines += ["", _bootstrap_line(report), "", "## Stale rows", ""]
    if report.stale.empty:
        lines.append("No stale rows.")
    else:
        lines.append(
            markdown_table(
                ["Date", "Table", "Category", "Rows"], report.stale[list(STALE_COLUMNS)].values.tolist()
            )
        )
        lines += ["", f"Total: {int(report.stale['rows'].sum()):,} stale rows."]
    lines += ["", "## Runs", "", _runs_section(report.runs), ""]
    return "\n".join(lines)


def _summary(report: GapReport) -> pd.DataFrame:
    start, end = report.period
    items = [
        ("Report", "Prediction coverage gap report"),
        ("Period start", start.isoformat()),
        ("Period end", end.isoformat()),
        ("Stages", ", ".join(report.stages)),
        ("Warehouse", report.warehouse),
        ("Generated at (UTC)", report.generated_at.isoformat()),
        ("Complete at expected coverage %", report.ok_pct),
        *((f"{report.pipeline.label(upstream)} gate %", pct) for upstream, pct in report.gates.items()),
        ("Gaps (date and stage)", len(report.real_gaps)),
        ("Gap dates", report.real_gaps["game_date"].nunique()),
        ("Bootstrap dates (expected)", len(report.bootstrap_dates)),
        ("Stale rows", int(report.stale["rows"].sum())),
        ("Runs", "none recorded yet" if report.runs is None else len(report.runs)),
    ]
    return pd.DataFrame(items, columns=["Item", "Value"]).astype({"Value": object})


STATUS_FILLS = {
    "ok": "C6EFCE",
    "bootstrap": "DDEBF7",
    "partial": "FFEB9C",
    "blocked": "F8CBAD",
    "missing": "FFC7CE",
    "succeeded": "C6EFCE",
    "failed": "FFC7CE",
    "refused": "FFC7CE",
    "cancelled": "EDEDED",
    "interrupted": "FFEB9C",
}
"""Background of a status cell in the workbook (Excel's own good/neutral/bad colours)."""

HEADER_FILL = "1F4E78"
PERCENT_FORMAT = "0.0%"
MAX_COLUMN_WIDTH = 60


def _xlsx_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Seasons named, percentages as fractions (Excel shows them with a percent format)."""
    frame = _seasons_named(frame)
    return frame.assign(
        **{column: frame[column] / 100 for column in frame.columns if column.endswith("_pct")}
    )


def _style_sheet(sheet: Any, frame: pd.DataFrame) -> None:
    """Header bold on a dark fill and frozen, widths to fit, percent format, status colours."""
    from openpyxl.styles import Font, PatternFill

    sheet.freeze_panes = "A2"
    for cell in sheet[1]:
        cell.font = Font(bold=True, color="FFFFFF")
        cell.fill = PatternFill("solid", fgColor=HEADER_FILL)
    for index, column in enumerate(frame.columns, start=1):
        letter = sheet.cell(row=1, column=index).column_letter
        width = max([len(str(column)), *(len(_cell(value)) for value in frame[column])], default=8)
        sheet.column_dimensions[letter].width = min(width + 2, MAX_COLUMN_WIDTH)
        cells = [row[0] for row in sheet.iter_rows(min_row=2, min_col=index, max_col=index)]
        if str(column).endswith("_pct"):
            for cell in cells:
                cell.number_format = PERCENT_FORMAT
        if column == "status":
            for cell in cells:
                fill = STATUS_FILLS.get(str(cell.value))
                if fill:
                    cell.fill = PatternFill("solid", fgColor=fill)


def to_xlsx(report: GapReport) -> bytes:
    """The report as an Excel workbook, one sheet per section: Summary, Monthly, Gaps, Stale rows and
    Runs (when a ledger was read). Headers are styled and frozen, percentages are numbers in a percent
    format, statuses coloured."""
    sheets = {
        "Summary": _summary(report),
        "Monthly": _xlsx_frame(report.monthly),
        "Gaps": _xlsx_frame(report.gaps),
        "Stale rows": _xlsx_frame(report.stale),
    }
    if report.runs is not None:  # None: no ledger to read, which the Summary says
        sheets["Runs"] = _xlsx_frame(report.runs)
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        for name, frame in sheets.items():
            frame.to_excel(writer, sheet_name=name, index=False)
            _style_sheet(writer.sheets[name], frame)
    return buffer.getvalue()


WRITERS: dict[str, Callable[[GapReport], str | bytes]] = {
    ".csv": to_csv,
    ".json": to_json,
    ".md": to_markdown,
    ".xlsx": to_xlsx,
}
"""Writer of each report file suffix."""


def check_report_path(path: str | Path) -> Path:
    """A report file path whose suffix names a known format and whose directory exists."""
    target = Path(path)
    if target.suffix.lower() not in WRITERS:
        raise BadInput(
            f"unknown report format {target.suffix or target.name!r} (choose from {', '.join(REPORT_SUFFIXES)})"
        )
    if not target.parent.is_dir():
        raise BadInput(f"directory {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise BadInput(f"{str(target)!r} is a directory")
    # Found before any work (issue 21, D14): the report is written as a file beside the target.
    try:
        handle, probe = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".probe")
    except OSError as exc:
        raise BadInput(f"cannot write to directory {str(target.parent)!r}: {exc.strerror or exc}") from None
    os.close(handle)
    os.unlink(probe)
    return target


def write_report(report: GapReport, path: str | Path) -> Path:
    """Write the report in the format its suffix names; the file appears whole or not at all."""
    target = check_report_path(path)
    content = WRITERS[target.suffix.lower()](report)
    data = content.encode("utf-8") if isinstance(content, str) else content
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        # mkstemp makes the file private (0600); a report is an ordinary file.
        os.chmod(temporary, target.stat().st_mode & 0o777 if target.exists() else 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target
