"""The Gaps & stale rows page's helpers: gap filters, stale-row tables, report periods and exports.

No Streamlit here: the page draws what these return, and tests call them directly. The export
functions are what the page's download buttons serve, so a test of them is a test of the files.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass

import pandas as pd

from backfill import export, reviewed_delete
from backfill.config import Settings
from backfill.coverage import GAP_STATUSES, no_data_note
from backfill.errors import BadInput
from backfill.report import GapReport
from backfill.seasons import season_label, season_of
from backfill.stale import CATEGORIES
from backfill.validate import check_range
from ui.format import of_text

# -- the gap table --------------------------------------------------------------------------------

STATUS_OPTIONS = (*GAP_STATUSES, "bootstrap")
"""Statuses the gap table can list: the real gaps, then bootstrap dates (expected, hidden by default)."""


@dataclass(frozen=True)
class GapFilter:
    """What the gap table shows; an empty choice means "all"."""

    seasons: Collection[int] = ()
    months: Collection[str] = ()
    """Months as ``YYYY-MM``."""
    stages: Collection[str] = ()
    statuses: Collection[str] = ()
    show_bootstrap: bool = False


def filter_gaps(gaps: pd.DataFrame, chosen: GapFilter) -> pd.DataFrame:
    """Rows of the report's gaps table that the filter keeps (bootstrap dates only when shown)."""
    keep = pd.Series(True, index=gaps.index)
    if not chosen.show_bootstrap:
        keep &= ~gaps["expected"].astype(bool)
    if chosen.seasons:
        keep &= gaps["season"].isin(list(chosen.seasons))
    if chosen.months:
        keep &= gaps["game_date"].map(month_of).isin(list(chosen.months))
    if chosen.stages:
        keep &= gaps["stage"].isin(list(chosen.stages))
    if chosen.statuses:
        keep &= gaps["status"].isin(list(chosen.statuses))
    return gaps[keep].reset_index(drop=True)


def real_gap_dates(gaps: pd.DataFrame) -> list[dt.date]:
    """Dates with a real gap (bootstrap dates left out): what a backfill can fix."""
    return sorted(set(gaps.loc[~gaps["expected"].astype(bool), "game_date"]))


GAP_TABLE_COLUMNS = (
    "Date",
    "Stage",
    "Status",
    "Reason",
    "Covered / total",
    "Expected %",
    "Upstream %",
    "Season",
)
"""Headings of the gap table, the reason early so that the why is read without scrolling."""


def gap_table(gaps: pd.DataFrame, labels: dict[str, str]) -> pd.DataFrame:
    """The gap table for people: one row per (date, stage), bootstrap statuses marked as expected."""
    return pd.DataFrame(
        {
            "Date": gaps["game_date"],
            "Stage": gaps["stage"].map(labels),
            "Status": [
                f"{status} (expected)" if expected else status
                for status, expected in zip(gaps["status"], gaps["expected"])
            ],
            "Reason": gaps["reason"],
            "Covered / total": [
                of_text(covered, total)
                for covered, total in zip(gaps["players_covered"], gaps["players_total"])
            ],
            "Expected %": gaps["expected_coverage_pct"],
            "Upstream %": gaps["upstream_coverage_pct"],
            "Season": [season_label(int(season)) for season in gaps["season"]],
        },
        columns=list(GAP_TABLE_COLUMNS),
    )


def month_of(day: dt.date) -> str:
    """``2021-12``."""
    return f"{day:%Y-%m}"


def month_label(month: str) -> str:
    """``Dec 2021`` for ``2021-12``."""
    year, number = (int(part) for part in month.split("-"))
    return f"{calendar.month_abbr[number]} {year}"


# -- stale rows -----------------------------------------------------------------------------------


def stale_by_category(stale: pd.DataFrame) -> dict[str, int]:
    """Stale rows per category, every category present (zero when none)."""
    totals = stale.groupby("category")["rows"].sum() if len(stale) else pd.Series(dtype="int64")
    return {category: int(totals.get(category, 0)) for category in CATEGORIES}


def stale_pivot(stale: pd.DataFrame, table_labels: dict[str, str]) -> pd.DataFrame:
    """Stale rows by date and table (rows) and category (columns), with a total column and row;
    tables named by their stage's label (``ui.stages.table_labels``)."""
    columns = ["Date", "Table", *CATEGORIES, "Total"]
    if stale.empty:
        return pd.DataFrame(columns=columns)
    wide = stale.pivot_table(
        index=["game_date", "table_name"], columns="category", values="rows", aggfunc="sum", fill_value=0
    )
    wide = wide.reindex(columns=list(CATEGORIES), fill_value=0).astype("int64")
    wide["Total"] = wide.sum(axis=1)
    wide = wide.reset_index().rename(columns={"game_date": "Date", "table_name": "Table"})
    wide["Table"] = wide["Table"].map(lambda name: table_labels.get(name, name))
    wide["Date"] = wide["Date"].astype(str)
    total = {
        "Date": "Total",
        "Table": "",
        **{column: int(wide[column].sum()) for column in [*CATEGORIES, "Total"]},
    }
    return pd.concat([wide, pd.DataFrame([total])], ignore_index=True)[columns]


def category_text(stale: pd.DataFrame) -> str:
    """``orphan 7, duplicate 7``: the categories that have stale rows, in the usual order."""
    counts = stale_by_category(stale)
    return ", ".join(f"{category} {rows:,}" for category, rows in counts.items() if rows)


SOLE_ROW_CATEGORIES = ("outdated", "old_version", "null_field")
"""Categories whose row can be a player's only row of the date (orphans have no player that played,
and a duplicate's newest copy stays), so deleting it can leave the date below the mark."""


def dates_that_may_become_gaps(stale: pd.DataFrame) -> list[dt.date]:
    """Dates where a deletion may leave players without a row until the date is backfilled."""
    return sorted(set(stale.loc[stale["category"].isin(SOLE_ROW_CATEGORIES), "game_date"]))


def gap_keys(gaps: pd.DataFrame) -> frozenset[tuple[dt.date, str]]:
    """(date, stage) of the real gaps of a gaps table."""
    real = gaps[~gaps["expected"].astype(bool)]
    return frozenset(zip(real["game_date"], real["stage"]))


def gaps_text(keys: Collection[tuple[dt.date, str]], labels: dict[str, str]) -> str:
    """``2021-12-15 MLFS, 2021-12-17 Predictions``."""
    return ", ".join(f"{day} {labels.get(stage, stage)}" for day, stage in sorted(keys))


def stale_total(stale: pd.DataFrame) -> int:
    """Stale rows in all (a row in two categories counts twice, as everywhere)."""
    return int(stale["rows"].sum()) if len(stale) else 0


def count_key(stale: pd.DataFrame) -> tuple[tuple[str, str, str, int], ...]:
    """The counts as plain, comparable values (the backend's rule: :func:`backfill.reviewed_delete.count_key`)."""
    return reviewed_delete.count_key(stale)


def preview_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Stale rows of one table, the categories that flag each row first."""
    flags = rows[list(CATEGORIES)].astype(bool)
    flagged = flags.apply(lambda row: ", ".join(category for category in CATEGORIES if row[category]), axis=1)
    rest = [column for column in rows.columns if column not in CATEGORIES]
    return pd.concat([pd.DataFrame({"stale because": flagged}), rows[rest]], axis=1)


# -- report periods -------------------------------------------------------------------------------

PERIOD_KINDS = ("Whole data", "Season", "Month", "Custom")
"""Ways to choose the period of an export."""


def season_period(season: int, bounds: tuple[dt.date, dt.date]) -> tuple[dt.date, dt.date]:
    """The dates of a season that the data holds."""
    first, last = bounds
    return max(dt.date(season, 8, 1), first), min(dt.date(season + 1, 7, 31), last)


def month_period(month: str, bounds: tuple[dt.date, dt.date]) -> tuple[dt.date, dt.date]:
    """The dates of a month (``YYYY-MM``) that the data holds."""
    year, number = (int(part) for part in month.split("-"))
    first, last = bounds
    month_end = dt.date(year, number, calendar.monthrange(year, number)[1])
    return max(dt.date(year, number, 1), first), min(month_end, last)


def seasons_between(bounds: tuple[dt.date, dt.date]) -> list[int]:
    """Seasons of the data, newest first."""
    return list(range(season_of(bounds[1]), season_of(bounds[0]) - 1, -1))


def months_between(bounds: tuple[dt.date, dt.date]) -> list[str]:
    """Months of the data (``YYYY-MM``), newest first."""
    first, last = bounds
    months, year, number = [], first.year, first.month
    while (year, number) <= (last.year, last.month):
        months.append(f"{year}-{number:02d}")
        year, number = (year + 1, 1) if number == 12 else (year, number + 1)
    return months[::-1]


def check_period(
    start: dt.date | None,
    end: dt.date | None,
    bounds: tuple[dt.date, dt.date],
    settings: Settings,
    today: Callable[[], dt.date] = dt.date.today,
) -> tuple[dt.date, dt.date]:
    """A period to report or delete in: both ends given, not reversed, not in the future, not over
    ``max_range_days``, and with some of the data in it; else BadInput with a one-line reason."""
    if start is None or end is None:
        raise BadInput("pick both a start and an end date")
    check_range(start, end, max_days=settings.max_range_days, today=today)
    first, last = bounds
    if end < first or start > last:
        raise BadInput(no_data_note(False, start, end, lambda: bounds))
    return start, end


# -- exports --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExportFormat:
    """One downloadable form of the gap report."""

    label: str
    suffix: str
    mime: str
    writer: Callable[[GapReport], str | bytes]


EXPORTS = {
    "csv": ExportFormat("CSV", ".csv", "text/csv", export.to_csv),
    "xlsx": ExportFormat(
        "Excel",
        ".xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        export.to_xlsx,
    ),
    "json": ExportFormat("JSON", ".json", "application/json", export.to_json),
    "md": ExportFormat("Markdown", ".md", "text/markdown", export.to_markdown),
}
"""The report's download formats, in the order of the buttons."""


def export_file_name(report: GapReport, fmt: str) -> str:
    """``gap-report_2021-12-01_2021-12-31.md``."""
    start, end = report.period
    return f"gap-report_{start}_{end}{EXPORTS[fmt].suffix}"


def export_data(report: GapReport, fmt: str) -> bytes:
    """The bytes of the report in one format: exactly what the page's download button serves."""
    content = EXPORTS[fmt].writer(report)
    return content.encode("utf-8") if isinstance(content, str) else content


def preview_markdown(text: str, levels: int = 2) -> str:
    """The hand-off note for showing inside the page: headings ``levels`` lower, so the note's title
    does not outshout the page's own."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in text.splitlines())
