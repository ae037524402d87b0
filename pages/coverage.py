"""Coverage: monthly and daily heatmaps per stage, the date selection, and a per-date drill-down."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import datetime as dt
import uuid
from functools import partial

import pandas as pd
import streamlit as st

from backfill import upstream_rerun
from backfill.drill import default_drill_date
from backfill.errors import BackfillError, BadInput
from backfill.holds import held_dates
from backfill.launch import submit
from backfill.ledger import AlreadyLaunched, Ledger
from backfill.report import plural
from backfill.seasons import season_label
from backfill.validate import parse_date
from ui import auth, charts, data, run_view, scroll, selection, stages, tables
from ui.format import date_text, dates_text, of_text, pct_text
from ui.shell import open_console, require_data_range

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
SHOWN_SEASONS = 3  # seasons drawn by default, newest first; more can be picked


def _notify(message: str | None) -> None:
    st.session_state["coverage_notice"] = message


def _new_chart_generation() -> None:
    # New chart keys drop the charts' own click state, so the next click on any cell, even the
    # same one, is a fresh event, and a cleared selection leaves no highlighted leftovers.
    st.session_state["coverage_chart_generation"] = st.session_state.get("coverage_chart_generation", 0) + 1


def _on_click(chart_key: str, game_days: frozenset[dt.date]) -> None:
    """Chart callback: a click selects a date (or drops it when selected) and opens it below; a
    drag across weeks selects the game dates of those weeks."""
    event = st.session_state.get(chart_key)
    if st.session_state.get("coverage_range_mode"):  # exact range: first day, then last day
        picked = selection.dates_from_chart_event(event, charts.DATE_SELECTION)
        if picked:
            _, notice = selection.range_click(st.session_state, picked[-1], game_days)
            _notify(notice)
            _new_chart_generation()
            return
    ranged = selection.dates_from_week_range(event, charts.RANGE_SELECTION, game_days)
    if ranged:
        added = selection.add_dates(st.session_state, ranged)
        _notify(f"Selected {plural(len(added), 'date')} from {ranged[0]} to {ranged[-1]}." if added else None)
        _new_chart_generation()
        return
    clicked, notice = selection.apply_click(st.session_state, event, charts.DATE_SELECTION, game_days)
    _notify(notice)
    if clicked:
        st.session_state["coverage_drill_date"] = clicked[-1]
        # The date opens below: the page scrolls to it once (a new key per click).
        st.session_state["coverage_scroll_clicks"] = st.session_state.get("coverage_scroll_clicks", 0) + 1
    if clicked or notice:
        _new_chart_generation()


def _on_month_click(chart_key: str, gaps_by_month: dict[str, list[dt.date]], stage_label: str) -> None:
    """Monthly heatmap callback: a click on a month selects that month's gap dates of the stage."""
    months = selection.months_from_chart_event(st.session_state.get(chart_key), charts.MONTH_SELECTION)
    if not months:
        return
    days = sorted({day for month in months for day in gaps_by_month.get(month, [])})
    added = selection.add_dates(st.session_state, days)
    named = ", ".join(f"{dt.date.fromisoformat(month + '-01'):%B %Y}" for month in months)
    if not days:
        _notify(f"{named}: no {stage_label} gap dates to select.")
    else:
        _notify(f"{named}: {plural(len(added), 'gap date')} of {stage_label} selected." if added else None)
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


RERUN_NOTICE_KEY = "coverage_rerun_notice"
DRILL_ANCHOR = "date-drill-down"


LAUNCH_KEY = "coverage_launch_key"  # the next click's idempotency key: a repeated click launches nothing


def _rerun_with_upstream(settings, day: dt.date, stage: str, who: str | None, key: str) -> None:
    """Button callback: backfill the date's upstream stage, then the stage, as one detached run."""
    try:
        run_id = submit(
            settings,
            upstream_rerun.date_request(settings, day, stage),
            who,
            warehouse=data.warehouse(settings),
            launch_key=key,
        )
    except AlreadyLaunched as exc:
        run_id = exc.run_id
    except BackfillError as exc:
        st.session_state[RERUN_NOTICE_KEY] = ("error", f"Nothing launched: {exc}", None)
        return
    st.session_state.pop(LAUNCH_KEY, None)
    run_view.watch(run_id)  # its end re-reads these figures (the sidebar sees it end)
    st.session_state[RERUN_NOTICE_KEY] = ("success", f"Launched run {run_id} for {day}.", run_id)


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


# The settings and warehouse app.py opened (cached); app.py drew the title before anything else.
settings, _ = open_console()
start, end = require_data_range(settings)
STAGE_LABELS = stages.labels(settings)
daily = data.daily_coverage(settings, start, end)
monthly = data.monthly_coverage(settings, start, end)
game_days = frozenset(tables.game_days(daily))
gap_rows = tables.gap_dates(daily)
all_seasons = sorted(set(daily["season"]), reverse=True)

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
    "Cells show expected coverage (bootstrap players left out); hover for every figure and the status note; "
    "click a month to select its gap dates."
)
generation = st.session_state.get("coverage_chart_generation", 0)
stage_gap_rows = gap_rows[gap_rows["stage"] == stage]
gaps_by_month = {
    period: sorted(set(stage_gap_rows.loc[stage_gap_rows["period"] == period, "game_date"]))
    for period in set(stage_gap_rows["period"])
}
month_key = f"coverage_monthly_{stage}_{generation}"
st.altair_chart(
    charts.monthly_heatmap(monthly[monthly["season"].isin(seasons)], stage),
    width="stretch",
    key=month_key,
    on_select=partial(_on_month_click, month_key, gaps_by_month, STAGE_LABELS[stage]),
    selection_mode=charts.MONTH_SELECTION,
)

st.subheader("By date")
st.caption(
    "Click a date to add it to the selection below and open it in the drill-down; "
    "click an outlined (selected) date to drop it; drag across weeks to select their dates; "
    "for an exact range, switch on range selection and click its first day, then its last."
)
st.toggle(
    "Range selection: first day, then last day",
    key="coverage_range_mode",
    on_change=lambda: st.session_state.pop(selection.RANGE_ANCHOR_KEY, None),
)
selected = selection.selected_dates(st.session_state)
for season in sorted(seasons, reverse=True):
    chart_key = f"coverage_calendar_{stage}_{season}_{generation}"
    st.altair_chart(
        charts.daily_calendar(
            daily,
            stage,
            season,
            frozenset(selected),
            upstream_label=stages.upstream_label(settings, stage),
            stage_label=STAGE_LABELS[stage],
        ),
        width="stretch",
        key=chart_key,
        on_select=partial(_on_click, chart_key, game_days),
        selection_mode=[charts.DATE_SELECTION, charts.RANGE_SELECTION],
    )

st.subheader("Selected dates")
stage_gaps = sorted(set(gap_rows.loc[gap_rows["stage"] == stage, "game_date"]))
# One row that wraps, each control as wide as its label (columns cut the labels at 1024 px).
add_col = button_col = gaps_col = clear_col = st.container(horizontal=True, vertical_alignment="bottom")
add_col.text_input(
    "Add a date",
    placeholder="YYYY-MM-DD",
    key="coverage_add_date",
    help=f"A game date from {start} to {end}, typed as YYYY-MM-DD (nothing else is guessed).",
    width=200,
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

st.subheader("Date drill-down", anchor=DRILL_ANCHOR)
link_day = _link_date(start, end)
if link_day is not None and link_day != st.session_state.get("coverage_drill_linked"):
    # A link from outside (the page's own ?date= of its last run is not one): land on its date.
    scroll.scroll_once(DRILL_ANCHOR, f"coverage?date={link_day}")
if st.session_state.get("coverage_scroll_clicks"):
    scroll.scroll_once(DRILL_ANCHOR, f"coverage-click-{st.session_state['coverage_scroll_clicks']}")
kept_day = st.session_state.get("coverage_drill_date")
if link_day is not None and link_day != st.session_state.get("coverage_drill_linked"):
    st.session_state["coverage_drill_date"] = link_day
elif not (isinstance(kept_day, dt.date) and start <= kept_day <= end):
    st.session_state["coverage_drill_date"] = default_drill_date(set(gap_rows["game_date"]), end)
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
# Below both columns, in one row that wraps: a narrow column cut the buttons' labels at 1024 px.
actions = st.container(horizontal=True)
with funnel_col:
    last = rows.loc[list(STAGE_LABELS)[-1]]
    metrics = st.container(horizontal=True)
    metrics.metric(
        "Played", played, help=f"{int(last['bootstrap_players'])} bootstrap players", width="content"
    )
    for name, label in STAGE_LABELS.items():
        metrics.metric(
            label,
            int(rows.loc[name, "players_covered"]),
            help=f"Status: {rows.loc[name, 'status']}",
            width="content",
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
        actions.button(
            "Add this date to the selection",
            key="coverage_add_drill",
            on_click=selection.add_dates,
            args=(st.session_state, [day]),
        )
    identity = auth.current_identity(settings)
    for name, label in STAGE_LABELS.items():
        upstream = stages.upstream_label(settings, name)
        if rows.loc[name, "status"] == "blocked" and upstream is not None:
            # A run on this date already (this click's or anyone's): the figures follow at its end.
            held = held_dates(Ledger(settings.ledger), data.warehouse(settings).url, [(name, day)])
            actions.button(
                f"Rerun with upstream: {upstream} then {label}",
                key=f"coverage_rerun_upstream_{name}",
                icon=":material/account_tree:",
                type="primary",
                disabled=not identity.may_act or bool(held),
                help=identity.reason
                if not identity.may_act
                else (
                    f"Under way: run {held[0].run_id} ({held[0].status}, started by {held[0].who}) is "
                    f"backfilling {day}; these figures are read again when it ends."
                    if held
                    else f"{label} of {day} waits for {upstream}: one run backfills {upstream}, then {label}."
                ),
                on_click=_rerun_with_upstream,
                args=(
                    settings,
                    day,
                    name,
                    identity.who,
                    st.session_state.setdefault(LAUNCH_KEY, uuid.uuid4().hex),
                ),
            )
    launched = st.session_state.pop(RERUN_NOTICE_KEY, None)
    if launched is not None:
        kind, text, run_id = launched
        (st.success if kind == "success" else st.error)(text)
        if run_id:
            st.page_link(
                "pages/backfill.py",
                label="Follow the run",
                icon=":material/play_circle:",
                query_params={"run": run_id},
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
