"""Gaps & stale rows: every date below the mark with its reason, stale rows and their deletion, exports."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import dataclasses
import datetime as dt
from functools import partial

import streamlit as st

from backfill.access import NotAllowed
from backfill.config import Settings
from backfill.errors import BackfillError, BadInput
from backfill.export import to_markdown
from backfill.report import ledger_runs
from backfill.reviewed_delete import ReviewOutdated, delete_as_reviewed
from backfill.seasons import season_label
from backfill.stale import CATEGORIES, stale_counts
from ui import data, gaps_data, selection, url_state
from ui import gaps as helpers
from ui import stages as stage_names
from ui.auth import current_identity
from ui.format import dates_text, plural
from ui.shell import open_console, require_data_range

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
EARLIEST_PICK, LATEST_PICK = dt.date(1946, 11, 1), dt.date(2099, 12, 31)  # the date boxes' limits;
# future dates can be picked on purpose, so that the page can say why they are refused.

CATEGORY_HELP = {
    "orphan": "No matching player_game_summary row: MERGE leftovers, renamed players.",
    "duplicate": "An extra row for the table's key (the newest row of a key is kept).",
    "outdated": "Computed before its upstream row last changed.",
    "old_version": "Feature or model version other than the configured current one.",
    "null_field": "NULL in a required column.",
}


# -- callbacks (they run before the page, so the page draws the state they leave) ----------------


def _select_gap_dates(days: list[dt.date]) -> None:
    before = selection.selected_dates(st.session_state)
    selection.clear_dates(st.session_state)
    selection.add_dates(st.session_state, days)
    replaced = f" (replacing {len(before)} selected before)" if before and before != days else ""
    st.session_state["gaps_select_notice"] = (
        f"Selected {len(days)} date{'s' if len(days) != 1 else ''} for a backfill{replaced}: {dates_text(days)}."
    )


def _drop_review() -> None:
    st.session_state.pop("gaps_delete_review", None)
    st.session_state.pop("gaps_delete_notice", None)


def _review_deletion(settings: Settings, bounds: tuple[dt.date, dt.date]) -> None:
    """Measure what a deletion of the range would remove, for the confirmation step."""
    st.session_state.pop("gaps_delete_result", None)
    try:
        # The boxes' values now, not the ones the button was drawn with: both can change in one run.
        start, end = helpers.check_period(
            st.session_state.get("gaps_delete_from"), st.session_state.get("gaps_delete_to"), bounds, settings
        )
        counts = stale_counts(data.warehouse(settings), settings, start, end)
    except BadInput as exc:
        st.session_state["gaps_delete_notice"] = ("error", f"Cannot delete: {exc}.")
        return
    except BackfillError as exc:
        st.session_state["gaps_delete_notice"] = ("error", f"Could not count the stale rows: {exc}")
        return
    if counts.empty:
        _drop_review()
        st.session_state["gaps_delete_notice"] = (
            "info",
            f"No stale rows from {start} to {end}: nothing to delete.",
        )
        return
    st.session_state["gaps_delete_notice"] = None
    st.session_state["gaps_delete_review"] = {"start": start, "end": end, "counts": counts}


def _delete(settings: Settings, who: str, gaps_before: frozenset) -> None:
    """Delete what the confirmation showed, or nothing when the stale rows changed since."""
    review = st.session_state.get("gaps_delete_review")
    if review is None:
        return
    start, end = review["start"], review["end"]
    try:
        deleted = delete_as_reviewed(settings, data.warehouse(settings), start, end, review["counts"], who)
    except ReviewOutdated as changed:
        st.session_state["gaps_delete_review"] = {"start": start, "end": end, "counts": changed.counts}
        if changed.counts.empty:
            _drop_review()
        st.session_state["gaps_delete_notice"] = (
            "warning",
            str(changed)[:1].upper() + str(changed)[1:] + ".",
        )
        return
    except NotAllowed as exc:
        st.session_state["gaps_delete_notice"] = ("error", f"Not deleted: {exc}")
        return
    except BackfillError as exc:
        st.session_state["gaps_delete_notice"] = ("error", f"Not deleted, nothing changed: {exc}")
        return
    _drop_review()
    st.session_state["gaps_delete_notice"] = None
    st.session_state["gaps_delete_result"] = {
        "start": start,
        "end": end,
        "who": who,
        "counts": deleted,
        "gaps_before": gaps_before,
    }
    data.refresh()  # every page's counts and coverage are stale now: read the warehouse again


def _notice(key: str) -> None:
    """Draw a page notice left by a callback: (kind, one line) or None."""
    notice = st.session_state.get(key)
    if notice:
        kind, text = notice
        {"error": st.error, "warning": st.warning, "info": st.info}[kind](text)


# -- the page -------------------------------------------------------------------------------------

# The settings and warehouse app.py opened (cached); app.py drew the title before anything else.
settings, _ = open_console()
STAGE_LABELS = stage_names.labels(settings)
start, end = require_data_range(settings)
bounds = (start, end)
try:
    report = gaps_data.gap_report(settings, start, end)
except BadInput as exc:  # a stage table lacks a column its stage names: doctor's words, not the engine's
    st.error(str(exc), icon=":material/block:")
    st.stop()
identity = current_identity(settings)  # who acts, and whether they may (SPEC 4.9)
who, operator = identity.who, identity.may_act

st.caption(
    f"Game dates {start} to {end}. A date is a gap when a stage's expected coverage is below "
    f"{settings.ok_pct:g}%; bootstrap dates (only players without enough history missing) are expected."
)

# -- gaps --
st.subheader("Gaps")
gaps = report.gaps
season_col, month_col, stage_col, status_col = st.columns(4)
# The filters are kept in the URL (?seasons=2021&months=2021-12&stages=...&statuses=...).
url_state.restore("gaps_seasons", "seasons", set(gaps["season"]), int, many=True)
url_state.restore("gaps_months", "months", {helpers.month_of(day) for day in gaps["game_date"]}, many=True)
url_state.restore("gaps_stages", "stages", set(STAGE_LABELS), many=True)
url_state.restore("gaps_statuses", "statuses", set(helpers.STATUS_OPTIONS), many=True)
seasons = season_col.multiselect(
    "Season",
    sorted(set(gaps["season"]), reverse=True),
    format_func=season_label,
    placeholder="All seasons",
    key="gaps_seasons",
    persist_state="session",
)
months = month_col.multiselect(
    "Month",
    sorted({helpers.month_of(day) for day in gaps["game_date"]}, reverse=True),
    format_func=helpers.month_label,
    placeholder="All months",
    key="gaps_months",
    persist_state="session",
)
stages = stage_col.multiselect(
    "Stage",
    list(STAGE_LABELS),
    format_func=STAGE_LABELS.get,
    placeholder="Every stage",
    key="gaps_stages",
    persist_state="session",
)
statuses = status_col.multiselect(
    "Status",
    list(helpers.STATUS_OPTIONS),
    placeholder="Every gap status",
    key="gaps_statuses",
    persist_state="session",
)
show_bootstrap = st.toggle(
    f"Show bootstrap dates (expected, not gaps): {len(report.bootstrap_dates)}",
    key="gaps_show_bootstrap",
    persist_state="session",
)
for param, value in (("seasons", seasons), ("months", months), ("stages", stages), ("statuses", statuses)):
    url_state.keep(param, value)
chosen = helpers.GapFilter(seasons, months, stages, statuses, show_bootstrap or "bootstrap" in statuses)
shown = helpers.filter_gaps(gaps, chosen)
shown_days = helpers.real_gap_dates(shown)

if report.real_gaps.empty:
    st.success(f"No gaps: every date with games is at {settings.ok_pct:g}% expected coverage or more.")
if shown.empty:
    st.info("No dates below the mark match these filters.")
else:
    st.caption(
        f"{plural(len(shown), 'row')} (date and stage); {plural(len(shown_days), 'gap date')}"
        + (
            ""
            if chosen.show_bootstrap
            else f"; {plural(len(report.bootstrap_dates), 'bootstrap row')} hidden"
        )
        + "."
    )
    st.dataframe(
        helpers.gap_table(shown, STAGE_LABELS),
        hide_index=True,
        column_config={
            "Reason": st.column_config.TextColumn(width="large"),
            "Expected %": st.column_config.NumberColumn(format="%.1f"),
            "MLFS %": st.column_config.NumberColumn(format="%.1f"),
        },
        key="gaps_table",
    )
select_col, notice_col = st.columns([2, 3], vertical_alignment="center")
select_col.button(
    f"Select these gap dates for a backfill ({len(shown_days)})",
    key="gaps_select",
    icon=":material/playlist_add_check:",
    on_click=_select_gap_dates,
    args=(shown_days,),
    disabled=not shown_days,
    help="Replaces the selection of dates (shared with the Coverage and Backfill pages) with the "
    "real gap dates the filters show; bootstrap dates are never selected.",
)
if st.session_state.get("gaps_select_notice"):
    notice_col.success(st.session_state["gaps_select_notice"], icon=":material/check:")
    notice_col.page_link(
        "pages/backfill.py", label="Open the Backfill page with them", icon=":material/arrow_forward:"
    )

# -- stale rows --
st.subheader("Stale rows")
stale = report.stale
by_category = helpers.stale_by_category(stale)
for column, (category, rows) in zip(st.columns(len(CATEGORIES) + 1), [*by_category.items(), ("total", None)]):
    if category == "total":
        column.metric(
            "Total",
            f"{helpers.stale_total(stale):,}",
            help="A row in two categories counts twice.",
            border=True,
        )
    else:
        column.metric(category, f"{rows:,}", help=CATEGORY_HELP[category], border=True)
if stale.empty:
    st.success("No stale rows.")
else:
    st.dataframe(
        helpers.stale_pivot(stale, stage_names.table_labels(settings)),
        hide_index=True,
        key="gaps_stale_pivot",
    )

    with st.expander("Preview the stale rows of a table"):
        table = st.segmented_control(
            "Table",
            list(STAGE_LABELS),
            format_func=STAGE_LABELS.get,
            default=list(STAGE_LABELS)[-1],
            required=True,
            key="gaps_preview_table",
        )
        preview = gaps_data.stale_preview(settings, table, start, end)
        st.caption(
            f"{len(preview)} stale rows of {settings.pipeline.stage(table).table_name}"
            + (f" (the first {gaps_data.PREVIEW_ROWS})" if len(preview) >= gaps_data.PREVIEW_ROWS else "")
            + "; the first column says why each row is stale."
        )
        st.dataframe(helpers.preview_table(preview), hide_index=True, height=280, key="gaps_preview")

st.markdown("**Delete stale rows**")
stale_days = sorted(set(stale["game_date"])) or [start, end]
from_col, to_col, review_col = st.columns([1, 1, 2], vertical_alignment="bottom")
delete_from = from_col.date_input(
    "From",
    value=stale_days[0],
    min_value=EARLIEST_PICK,
    max_value=LATEST_PICK,
    format="YYYY-MM-DD",
    key="gaps_delete_from",
    disabled=not operator,
    on_change=_drop_review,
)
delete_to = to_col.date_input(
    "To",
    value=stale_days[-1],
    min_value=EARLIEST_PICK,
    max_value=LATEST_PICK,
    format="YYYY-MM-DD",
    key="gaps_delete_to",
    disabled=not operator,
    on_change=_drop_review,
)
range_error = data.write_refusal(settings)  # a deletion is refused before any write, as a launch is
try:
    helpers.check_period(delete_from, delete_to, bounds, settings)
except BadInput as exc:
    range_error = range_error or f"Cannot delete: {exc}."
review_col.button(
    "Review deletion",
    key="gaps_delete_review_button",
    icon=":material/fact_check:",
    on_click=_review_deletion,
    args=(settings, bounds),
    disabled=not operator or range_error is not None,
)
if not operator:
    st.info(f"Only operators may delete stale rows. {identity.summary}", icon=":material/lock:")
elif range_error:
    st.error(range_error)
_notice("gaps_delete_notice")

review = st.session_state.get("gaps_delete_review")
if review is not None and operator:
    planned = review["counts"]
    total = helpers.stale_total(planned)
    with st.container(border=True, key="gaps_delete_confirmation"):
        st.markdown(
            f"**These {total:,} stale rows from {review['start']} to {review['end']} will be deleted** "
            f"({helpers.category_text(planned)}):"
        )
        st.dataframe(
            helpers.stale_pivot(planned, stage_names.table_labels(settings)),
            hide_index=True,
            key="gaps_delete_plan",
        )
        at_risk = helpers.dates_that_may_become_gaps(planned)
        if at_risk:
            st.warning(
                f"Outdated, old-version and null-field rows are often a player's only row: "
                f"{dates_text(at_risk)} may fall below the mark until they are backfilled.",
                icon=":material/warning:",
            )
        st.caption(
            "One transaction: every other row of these dates stays. The deletion is recorded in the run "
            f"ledger as done by {who}."
        )
        confirm_col, cancel_col, _ = st.columns([1, 1, 2])
        confirm_col.button(
            f"Delete {total:,} stale rows",
            key="gaps_delete_confirm",
            type="primary",
            icon=":material/delete:",
            on_click=_delete,
            args=(settings, who, helpers.gap_keys(gaps)),
        )
        cancel_col.button("Cancel", key="gaps_delete_cancel", on_click=_drop_review)

result = st.session_state.get("gaps_delete_result")
if result is not None:
    deleted = result["counts"]
    st.success(
        f"Deleted {helpers.stale_total(deleted):,} stale rows from {result['start']} to {result['end']}, "
        f"recorded in the run ledger as done by {result['who']}.",
        icon=":material/check:",
    )
    st.dataframe(
        helpers.stale_pivot(deleted, stage_names.table_labels(settings)), hide_index=True, key="gaps_deleted"
    )
    new_gaps = helpers.gap_keys(gaps) - result["gaps_before"]
    if new_gaps:
        st.warning(
            f"Now below the mark, players having lost their only row: {helpers.gaps_text(new_gaps, STAGE_LABELS)}. "
            "They are in the gap table above, ready to be selected for a backfill.",
            icon=":material/warning:",
        )

# -- exports --
st.subheader("Export the gap report")
kind_col, pick_col, pick_end_col = st.columns([2, 1, 1], vertical_alignment="bottom")
kind = kind_col.segmented_control(
    "Period",
    list(helpers.PERIOD_KINDS),
    default="Whole data",
    required=True,
    key="gaps_period_kind",
)
period, period_error = bounds, None
if kind == "Season":
    season = pick_col.selectbox(
        "Season", helpers.seasons_between(bounds), format_func=season_label, key="gaps_period_season"
    )
    period = helpers.season_period(season, bounds)
elif kind == "Month":
    month_options = helpers.months_between(bounds)
    gap_months = [helpers.month_of(day) for day in helpers.real_gap_dates(gaps)]
    month = pick_col.selectbox(
        "Month",
        month_options,
        index=month_options.index(gap_months[-1]) if gap_months else 0,
        format_func=helpers.month_label,
        key="gaps_period_month",
    )
    period = helpers.month_period(month, bounds)
elif kind == "Custom":
    custom_start = pick_col.date_input(
        "Start",
        value=start,
        min_value=EARLIEST_PICK,
        max_value=LATEST_PICK,
        format="YYYY-MM-DD",
        key="gaps_period_start",
    )
    custom_end = pick_end_col.date_input(
        "End",
        value=end,
        min_value=EARLIEST_PICK,
        max_value=LATEST_PICK,
        format="YYYY-MM-DD",
        key="gaps_period_end",
    )
    try:
        period = helpers.check_period(custom_start, custom_end, bounds, settings)
    except BadInput as exc:
        period, period_error = None, f"No report: {exc}."

if period is None:
    st.error(period_error)
else:
    period_report = gaps_data.gap_report(settings, *period)
    try:
        runs = ledger_runs(settings.ledger, *period, settings.pipeline.stage_names)
    except BackfillError as exc:
        runs = None
        st.warning(f"Runs are left out of the report: {exc}")
    period_report = dataclasses.replace(period_report, runs=runs)
    real = period_report.real_gaps
    if period_report.no_data is not None:
        st.info(period_report.no_data.capitalize() + ".")
    st.caption(
        f"{period[0]} to {period[1]}: {plural(len(real), 'gap')} on {plural(real['game_date'].nunique(), 'date')}, "
        f"{plural(len(period_report.bootstrap_dates), 'bootstrap row')} (expected), "
        f"{plural(helpers.stale_total(period_report.stale), 'stale row')}, "
        + ("no run ledger yet." if runs is None else f"{len(runs)} backfill runs.")
        + " CSV holds the gap table; Excel, JSON and Markdown the whole report."
    )
    for column, (fmt, export) in zip(st.columns(len(helpers.EXPORTS)), helpers.EXPORTS.items()):
        column.download_button(
            export.label,
            # Built when clicked (Streamlit runs the callable then), so reruns stay fast.
            data=partial(helpers.export_data, period_report, fmt),
            file_name=helpers.export_file_name(period_report, fmt),
            mime=export.mime,
            key=f"gaps_export_{fmt}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )
    with st.expander("Preview the hand-off note (Markdown)"):
        st.markdown(helpers.preview_markdown(to_markdown(period_report)))
