"""Coverage: monthly and daily heatmaps per stage, the date selection, and a per-date drill-down."""

import datetime as dt
from functools import partial

import pandas as pd
import streamlit as st

from backfill.errors import BadInput
from backfill.seasons import season_label
from backfill.validate import parse_date
from ui import charts, data, selection, stages, tables
from ui.format import date_text, dates_text, of_text, pct_text
from ui.shell import open_console, require_data_range

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
DEFAULT_DRILL_DATE = dt.date(2021, 12, 7)  # the incident's first timed-out date (SPEC 1), while a gap
SHOWN_SEASONS = 3  # seasons drawn by default, newest first; more can be picked


def _notify(message: str | None) -> None:
    st.session_state["coverage_notice"] = message


def _new_chart_generation() -> None:
    # New chart keys drop the charts' own click state, so the next click on any cell, even the
    # same one, is a fresh event, and a cleared selection leaves no highlighted leftovers.
    st.session_state["coverage_chart_generation"] = st.session_state.get("coverage_chart_generation", 0) + 1


def _on_click(chart_key: str, game_days: frozenset[dt.date]) -> None:
    """Chart callback: a click selects a date (or drops it when selected) and opens it below."""
    event = st.session_state.get(chart_key)
    clicked, notice = selection.apply_click(st.session_state, event, charts.DATE_SELECTION, game_days)
    _notify(notice)
    if clicked:
        st.session_state["coverage_drill_date"] = clicked[-1]
    if clicked or notice:
        _new_chart_generation()


def _add_typed(game_days: frozenset[dt.date]) -> None:
    """Button callback: add the date from the date box, or say in one line why not."""
    typed = (st.session_state.get("coverage_add_date") or "").strip()
    try:
        day = parse_date(typed) if typed else None
    except BadInput:
        _notify(f"{typed[:40]!r} is not a date: type it as YYYY-MM-DD.")
        return
    if day is None:
        _notify("Type a date first (YYYY-MM-DD).")
    elif day not in game_days:
        _notify(f"{day} had no games, so there is nothing to backfill.")
    elif not selection.add_dates(st.session_state, [day]):
        _notify(f"{day} is already selected.")
    else:
        _notify(None)


def _add_gaps(days: list[dt.date]) -> None:
    added = selection.add_dates(st.session_state, days)
    _notify(None if added else "Every gap date is already selected.")


def _clear() -> None:
    selection.clear_dates(st.session_state)
    _notify(None)
    _new_chart_generation()


def _link_date(start: dt.date, end: dt.date) -> dt.date | None:
    """The valid ``?date=`` of a deep link, or None (with a one-line warning when it is unusable)."""
    raw = st.query_params.get("date")
    if not raw:
        return None
    try:
        day = parse_date(raw)
    except BadInput:
        st.warning(f"Ignored the link's date {raw[:40]!r}: expected YYYY-MM-DD.", icon=":material/link_off:")
        return None
    if not start <= day <= end:
        st.warning(
            f"Ignored the link's date {day}: the data runs from {start} to {end}.", icon=":material/link_off:"
        )
        return None
    return day


def _default_drill_date(gap_days: list[dt.date], end: dt.date) -> dt.date:
    if DEFAULT_DRILL_DATE in gap_days:
        return DEFAULT_DRILL_DATE
    return gap_days[-1] if gap_days else end


# app.py opened the console already; again here (cheap, cached) so a page that Streamlit ran
# without app.py hands over to it (see ui.shell.open_console).
settings, _ = open_console(__file__)
start, end = require_data_range(settings)
STAGE_LABELS = stages.labels(settings)
daily = data.daily_coverage(settings, start, end)
monthly = data.monthly_coverage(settings, start, end)
game_days = frozenset(tables.game_days(daily))
gap_rows = tables.gap_dates(daily)
all_seasons = sorted(set(daily["season"]), reverse=True)

st.title("Coverage")
stage_col, seasons_col = st.columns([1, 2])
with stage_col:
    stage = st.segmented_control(
        "Stage",
        list(reversed(STAGE_LABELS)),
        format_func=STAGE_LABELS.get,
        default=list(STAGE_LABELS)[-1],
        required=True,
        key="coverage_stage",
        persist_state="session",
    )
with seasons_col:
    if len(all_seasons) > 1:
        seasons = st.multiselect(
            "Seasons",
            all_seasons,
            default=all_seasons[:SHOWN_SEASONS],
            format_func=season_label,
            key="coverage_seasons",
            persist_state="session",
        )
        if not seasons:
            st.caption("No season picked: showing the newest.")
            seasons = all_seasons[:1]
    else:
        seasons = all_seasons

st.altair_chart(charts.color_key(), width="stretch", key="coverage_color_key")
st.subheader("By month")
st.caption(
    "Cells show expected coverage (bootstrap players left out); hover for every figure and the status note."
)
st.altair_chart(
    charts.monthly_heatmap(monthly[monthly["season"].isin(seasons)], stage),
    width="stretch",
    key=f"coverage_monthly_{stage}",
)

st.subheader("By date")
st.caption(
    "Click a date to add it to the selection below and open it in the drill-down; "
    "click an outlined (selected) date to drop it."
)
selected = selection.selected_dates(st.session_state)
generation = st.session_state.get("coverage_chart_generation", 0)
for season in sorted(seasons, reverse=True):
    chart_key = f"coverage_calendar_{stage}_{season}_{generation}"
    st.altair_chart(
        charts.daily_calendar(
            daily, stage, season, frozenset(selected), upstream_label=stages.upstream_label(settings, stage)
        ),
        width="stretch",
        key=chart_key,
        on_select=partial(_on_click, chart_key, game_days),
        selection_mode=charts.DATE_SELECTION,
    )

st.subheader("Selected dates")
stage_gaps = sorted(set(gap_rows.loc[gap_rows["stage"] == stage, "game_date"]))
add_col, button_col, gaps_col, clear_col = st.columns([2, 1, 2, 1], vertical_alignment="bottom")
add_col.text_input(
    "Add a date",
    placeholder="YYYY-MM-DD",
    key="coverage_add_date",
    help=f"A game date from {start} to {end}, typed as YYYY-MM-DD (nothing else is guessed).",
)
button_col.button("Add", key="coverage_add_button", on_click=_add_typed, args=(game_days,))
gaps_col.button(
    f"Add {STAGE_LABELS[stage]} gap dates ({len(stage_gaps)})",
    key="coverage_add_gaps",
    on_click=_add_gaps,
    args=(stage_gaps,),
    disabled=not stage_gaps,
)
clear_col.button("Clear selection", key="coverage_clear", on_click=_clear)
notice = st.session_state.pop("coverage_notice", None)  # shown once: it is about the last action only
if notice:
    st.warning(notice, icon=":material/info:")

selected = selection.selected_dates(st.session_state)
if selected:
    st.markdown(f"**{len(selected)} selected:** {dates_text(selected)}")
    statuses = daily.pivot(index="game_date", columns="stage", values="status")
    st.dataframe(
        pd.DataFrame(
            {"Date": selected}
            | {
                label: [statuses[name].get(day, "–") for day in selected]
                for name, label in STAGE_LABELS.items()
            }
        ),
        hide_index=True,
        width="content",
        key="coverage_selected_table",
    )
else:
    st.caption("No dates selected yet.")

st.subheader("Date drill-down")
link_day = _link_date(start, end)
kept_day = st.session_state.get("coverage_drill_date")
if link_day is not None and link_day != st.session_state.get("coverage_drill_linked"):
    st.session_state["coverage_drill_date"] = link_day
elif not (isinstance(kept_day, dt.date) and start <= kept_day <= end):
    st.session_state["coverage_drill_date"] = _default_drill_date(sorted(set(gap_rows["game_date"])), end)
day = st.columns([1, 3])[0].date_input(
    "Date",
    min_value=start,
    max_value=end,
    format="YYYY-MM-DD",
    key="coverage_drill_date",
    persist_state="session",
)
if day is None:
    st.caption("Pick a date to see its funnel and missing players.")
    st.stop()
# Remember the date the URL now carries, so a later run does not mistake it for a new link.
st.session_state["coverage_drill_linked"] = day
st.query_params["date"] = day.isoformat()

rows = daily[daily["game_date"] == day].set_index("stage")
played = int(rows["players_total"].iloc[0])
if played == 0:
    st.info(f"No games on {date_text(day)}.")
    st.stop()

funnel_col, players_col = st.columns([1, 2])
with funnel_col:
    last = rows.loc[list(STAGE_LABELS)[-1]]
    metrics = st.columns(len(STAGE_LABELS) + 1)
    metrics[0].metric("Played", played, help=f"{int(last['bootstrap_players'])} bootstrap players")
    for column, (name, label) in zip(metrics[1:], STAGE_LABELS.items(), strict=True):
        column.metric(
            label, int(rows.loc[name, "players_covered"]), help=f"Status: {rows.loc[name, 'status']}"
        )
    st.altair_chart(
        charts.funnel_chart(
            {"played": played}
            | {label: rows.loc[name, "players_covered"] for name, label in STAGE_LABELS.items()}
        ),
        width="stretch",
        key="coverage_funnel",
    )
    st.caption(
        "  \n".join(
            f"{label} {rows.loc[name, 'status']}: {pct_text(rows.loc[name, 'player_game_coverage_pct'])}, expected "
            f"{pct_text(rows.loc[name, 'expected_coverage_pct'])} "
            f"({of_text(rows.loc[name, 'expected_covered'], rows.loc[name, 'expected_total'])})"
            for name, label in STAGE_LABELS.items()
        )
    )
    if day in game_days and day not in selected:
        st.button(
            "Add this date to the selection",
            key="coverage_add_drill",
            on_click=selection.add_dates,
            args=(st.session_state, [day]),
        )
with players_col:
    missing = data.missing_players(settings, day)
    if missing.empty:
        st.success(
            f"Every player of {date_text(day)} has a row in every stage ({', '.join(STAGE_LABELS.values())})."
        )
    else:
        reasons = missing["reason"].value_counts()
        st.markdown(
            f"**{len(missing)} of {played} players missing on {date_text(day)}:** "
            + "; ".join(f"{reason} ({count})" for reason, count in reasons.items())
        )
        st.dataframe(
            tables.missing_players_table(missing, STAGE_LABELS),
            hide_index=True,
            height=320,
            column_config={"Reason": st.column_config.TextColumn(width="large")},
            key="coverage_missing",
        )
