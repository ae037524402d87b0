"""Altair chart builders for coverage: pure functions from backend DataFrames to chart specs.

No Streamlit here, so every builder can be tested by inspecting its Vega-Lite dict.

Colour is one ordered key that reads as "coverage, with status": complete and ok cells are
green, partial cells yellow to orange by how much is covered, and the statuses that need a
different kind of attention get their own hue (bootstrap light blue, blocked purple, missing red,
no games light grey). Every cell's exact numbers are in its tooltip.

The heatmaps carry no Vega legend: Streamlit fits a whole chart into its height, and a legend
below the cells squeezed them to nothing (seen with Streamlit 1.67), while one at the side was cut
off. ``color_key`` draws the key once, as a strip of its own.
"""

from __future__ import annotations

import datetime as dt

import altair as alt
import pandas as pd

from backfill.seasons import season_label
from ui.format import of_text, pct_text

BAND_COLORS = {
    "100%": "#1b7837",
    "ok, <100%": "#7fbf7b",
    "bootstrap": "#a6cee3",
    "partial, ≥90%": "#fee08b",
    "partial, <90%": "#f4a261",
    "blocked": "#7b5ea7",
    "missing": "#c62828",
    "no games": "#e8e8e8",
}
"""Colour key entries in display order, with their colours."""

DARK_BANDS = ("100%", "blocked", "missing")
"""Bands dark enough to need white text on top."""

PARTIAL_SPLIT_PCT = 90.0
"""Where a partial cell turns from yellow to orange (the default MLFS gate, a familiar line)."""

SEASON_MONTHS = ("Aug", "Sep", "Oct", "Nov", "Dec", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul")
"""Months in season order (a season starts on August 1), so October comes before January."""

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

DATE_SELECTION = "picked_dates"
"""Name of the daily calendar's point selection; Streamlit reports clicks under this name."""

RANGE_SELECTION = "picked_weeks"
"""Name of the daily calendar's interval selection (drag across weeks): a range of dates."""

MONTH_SELECTION = "picked_months"
"""Name of the monthly heatmap's point selection: a click selects that month's gap dates."""

CELL_PX = 20
"""Height of one weekday row of the daily calendar."""

SEASON_ROW_PX = 36
"""Height of one season row of the monthly heatmap."""

FRAME_PX = {"monthly": 55, "calendar": 90, "funnel": 40, "key": 45}
"""Height of what surrounds the cells (title, axis): Streamlit fits the whole chart, not just its
cells, into the height it is given, so this is added to the cells' own height."""


def coverage_band(status: str, coverage_pct: float | None) -> str:
    """The colour-key entry of a cell: its status, graded by coverage where the status is ok or partial."""
    if status == "no_games":
        return "no games"
    if status in ("missing", "blocked"):
        return status
    if status == "bootstrap":
        return "bootstrap"
    covered = -1.0 if coverage_pct is None or pd.isna(coverage_pct) else float(coverage_pct)
    if status == "ok":
        return "100%" if covered >= 100.0 else "ok, <100%"
    # A month can be partial while its total stays high (one bad date in thirty): still not green.
    return "partial, ≥90%" if covered >= PARTIAL_SPLIT_PCT else "partial, <90%"


def categorical_color(field: str, colors: dict[str, str], title: str | None = None) -> alt.Color:
    """A fixed colour per category; the scale lists every category, so each has the same colour in
    every chart whether or not it occurs there."""
    return alt.Color(
        f"{field}:N",
        title=title,
        scale=alt.Scale(domain=list(colors), range=list(colors.values())),
        legend=None,
    )


def swatch_key(field: str, colors: dict[str, str], height: int, tooltip: str | None = None) -> alt.Chart:
    """A colour key drawn as a chart: one labelled swatch per category, in order (Vega legends
    squeeze Streamlit's charts)."""
    encoding = {
        "x": alt.X(
            f"{field}:N",
            sort=list(colors),
            title=None,
            axis=alt.Axis(orient="bottom", labelAngle=0, domain=False, ticks=False, labelLimit=160),
        ),
        "color": categorical_color(field, colors),
    }
    if tooltip:
        encoding["tooltip"] = [alt.Tooltip(f"{field}:N", title=tooltip)]
    return (
        alt.Chart(pd.DataFrame({field: list(colors)}))
        .mark_rect(stroke="white", strokeWidth=2)
        .encode(**encoding)
        .properties(height=height)
    )


def _color() -> alt.Color:
    """The coverage band colour."""
    return categorical_color("band", BAND_COLORS, title="Coverage")


def color_key() -> alt.Chart:
    """The colour key of the heatmaps: one labelled swatch per band, in order."""
    return swatch_key("band", BAND_COLORS, height=20 + FRAME_PX["key"], tooltip="Colour")


def _text_color() -> alt.Color:
    dark = alt.FieldOneOfPredicate(field="band", oneOf=list(DARK_BANDS))
    return alt.when(dark).then(alt.value("white")).otherwise(alt.value("#222222"))


def _stage_rows(frame: pd.DataFrame, stage: str) -> pd.DataFrame:
    rows = frame[frame["stage"] == stage].copy()
    rows["band"] = [
        coverage_band(status, value)
        for status, value in zip(rows["status"], rows["expected_coverage_pct"], strict=True)
    ]
    rows["season_label"] = [season_label(int(season)) for season in rows["season"]]
    return rows


def monthly_heatmap_data(monthly: pd.DataFrame, stage: str) -> pd.DataFrame:
    """One row per (season, month with games) of a stage, with the fields the monthly heatmap draws.

    Months without a game (the off-season, when a range spans several seasons) are left out, so
    the grid shows the months of play only.
    """
    rows = _stage_rows(monthly, stage)
    rows = rows[rows["game_dates"] > 0]
    rows["month"] = [dt.date.fromisoformat(f"{period}-01").strftime("%b") for period in rows["period"]]
    rows["label"] = [pct_text(value).removesuffix("%") for value in rows["expected_coverage_pct"]]
    rows["expected_text"] = [
        f"{pct_text(p)} ({of_text(c, t)})"
        for p, c, t in zip(rows["expected_coverage_pct"], rows["expected_covered"], rows["expected_total"])
    ]
    rows["player_games_text"] = [
        f"{pct_text(p)} ({of_text(c, t)})"
        for p, c, t in zip(
            rows["player_game_coverage_pct"], rows["player_games_covered"], rows["player_games_total"]
        )
    ]
    rows["players_text"] = [
        f"{pct_text(p)} ({of_text(c, t)})"
        for p, c, t in zip(rows["player_coverage_pct"], rows["players_covered"], rows["players_total"])
    ]
    columns = ["period", "season_label", "month", "band", "status", "note", "label", "game_dates"]
    return rows[columns + ["expected_text", "player_games_text", "players_text"]].reset_index(drop=True)


def monthly_heatmap(monthly: pd.DataFrame, stage: str) -> alt.LayerChart:
    """Season x month grid of one stage, coloured by coverage band and labelled with expected coverage."""
    data = monthly_heatmap_data(monthly, stage)
    months = [month for month in SEASON_MONTHS if month in set(data["month"])]
    seasons = sorted(set(data["season_label"]), reverse=True)  # newest first, like the calendars
    base = alt.Chart(data).encode(
        x=alt.X("month:O", title=None, sort=months, axis=alt.Axis(orient="top", labelAngle=0)),
        y=alt.Y("season_label:O", title=None, sort=seasons),
    )
    cells = base.mark_rect(stroke="white", strokeWidth=2).encode(
        color=_color(),
        tooltip=[
            alt.Tooltip("period:N", title="Month"),
            alt.Tooltip("season_label:N", title="Season"),
            alt.Tooltip("status:N", title="Status"),
            alt.Tooltip("note:N", title="Note"),
            alt.Tooltip("expected_text:N", title="Expected coverage"),
            alt.Tooltip("player_games_text:N", title="Player-game coverage"),
            alt.Tooltip("players_text:N", title="Player coverage (team figure)"),
            alt.Tooltip("game_dates:Q", title="Game dates"),
        ],
    )
    cells = cells.add_params(alt.selection_point(name=MONTH_SELECTION, fields=["period"], on="click"))
    labels = base.mark_text(fontSize=12).encode(text="label:N", color=_text_color())
    return alt.layer(cells, labels).properties(height=SEASON_ROW_PX * len(seasons) + FRAME_PX["monthly"])


def daily_calendar_data(
    daily: pd.DataFrame, stage: str, season: int, selected: frozenset[dt.date] | set[dt.date] = frozenset()
) -> pd.DataFrame:
    """One row per date of a season and stage, placed by week (Monday start) and weekday.

    The calendar runs from the season's first game date to its last: off days in between are
    drawn (as no games), the off-season around it is not.
    """
    rows = _stage_rows(daily, stage)
    rows = rows[rows["season"] == season]
    played = rows.loc[rows["players_total"] > 0, "game_date"]
    if len(played):
        rows = rows[(rows["game_date"] >= played.min()) & (rows["game_date"] <= played.max())]
    days = list(rows["game_date"])
    week_starts = [day - dt.timedelta(days=day.weekday()) for day in days]
    out = pd.DataFrame(
        {
            "game_date": [day.isoformat() for day in days],
            "day": [day.day for day in days],
            "weekday": [WEEKDAYS[day.weekday()] for day in days],
            "week_start": [start.isoformat() for start in week_starts],
            "week_end": [(start + dt.timedelta(days=7)).isoformat() for start in week_starts],
            "band": rows["band"].to_list(),
            "status": rows["status"].to_list(),
            "players_text": [of_text(c, t) for c, t in zip(rows["players_covered"], rows["players_total"])],
            "expected_text": [
                f"{pct_text(p)} ({of_text(c, t)})"
                for p, c, t in zip(
                    rows["expected_coverage_pct"], rows["expected_covered"], rows["expected_total"]
                )
            ],
            "player_game_text": [pct_text(p) for p in rows["player_game_coverage_pct"]],
            "bootstrap_players": rows["bootstrap_players"].to_list(),
            "upstream_text": [pct_text(p) for p in rows["upstream_coverage_pct"]],
            "selected": [day in selected for day in days],
        }
    )
    return out


def daily_calendar(
    daily: pd.DataFrame,
    stage: str,
    season: int,
    selected: frozenset[dt.date] | set[dt.date] = frozenset(),
    upstream_label: str | None = None,
    stage_label: str | None = None,
) -> alt.LayerChart:
    """Week x weekday calendar of one season and stage, each cell with its day of the month.

    Clicking a cell selects its ``game_date``; dragging across weeks selects the dates of those
    weeks (``RANGE_SELECTION``). Dates already in the console's selection are outlined, so the
    calendar shows what a backfill would take. The click selection itself is not drawn (no
    dimming): the page keeps the selection that matters, across clicks and charts.
    """
    data = daily_calendar_data(daily, stage, season, selected)
    picked = alt.selection_point(name=DATE_SELECTION, fields=["game_date"], on="click")
    weeks = alt.selection_interval(name=RANGE_SELECTION, encodings=["x"])
    tooltip = [
        alt.Tooltip("game_date:N", title="Date"),
        alt.Tooltip("weekday:N", title="Day"),
        alt.Tooltip("status:N", title="Status"),
        alt.Tooltip("players_text:N", title="Players covered / played"),
        alt.Tooltip("expected_text:N", title="Expected coverage"),
        alt.Tooltip("player_game_text:N", title="Player-game coverage"),
        alt.Tooltip("bootstrap_players:Q", title="Bootstrap players"),
    ]
    if upstream_label:
        tooltip.append(alt.Tooltip("upstream_text:N", title=f"{upstream_label} coverage (gate input)"))
    outlined = alt.FieldEqualPredicate(field="selected", equal=True)
    base = alt.Chart(data).encode(
        # Dates are drawn as UTC so no browser time zone can shift a cell to the day before.
        x=alt.X(
            "week_start:T",
            title=None,
            scale=alt.Scale(type="utc"),
            axis=alt.Axis(format="%b", tickCount="month", labelAlign="left", grid=False),
        ),
        x2="week_end:T",
        y=alt.Y("weekday:O", title=None, sort=list(WEEKDAYS)),
    )
    cells = (
        base.mark_rect()
        .encode(
            color=_color(),
            stroke=alt.when(outlined).then(alt.value("#111111")).otherwise(alt.value("white")),
            strokeWidth=alt.when(outlined).then(alt.value(2.5)).otherwise(alt.value(1.0)),
            tooltip=tooltip,
        )
        .add_params(picked, weeks)
    )
    # The day number sits in the middle of its week's cell; it takes no clicks (the cell does).
    days = (
        alt.Chart(data)
        .transform_calculate(middle="(toDate(datum.week_start) + toDate(datum.week_end)) / 2")
        .mark_text(fontSize=9)
        .encode(
            x=alt.X("middle:T", scale=alt.Scale(type="utc")),
            y=alt.Y("weekday:O", sort=list(WEEKDAYS)),
            text="day:N",
            color=_text_color(),
            tooltip=tooltip,
        )
    )
    return alt.layer(cells, days).properties(
        height=CELL_PX * len(WEEKDAYS) + FRAME_PX["calendar"],
        title=f"{season_label(season)} · {stage_label or stage}",
    )


def funnel_chart(steps: dict[str, int]) -> alt.LayerChart:
    """Played -> each stage in order for one date, as horizontal bars with their counts."""
    data = pd.DataFrame({"step": list(steps), "players": [int(count) for count in steps.values()]})
    base = alt.Chart(data).encode(
        y=alt.Y("step:N", sort=list(data["step"]), title=None),
        x=alt.X("players:Q", title=None, scale=alt.Scale(domainMin=0)),
    )
    bars = base.mark_bar(color="#4a6d8c")
    counts = base.mark_text(align="left", dx=4).encode(text="players:Q")
    return alt.layer(bars, counts).properties(height=len(data) * 28 + FRAME_PX["funnel"])
