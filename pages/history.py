"""History: the scheduled checks and their alerts, coverage over time, and when gaps appeared and were fixed."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import altair as alt
import streamlit as st

from backfill.errors import BadInput
from backfill.history import coverage_over_time, gap_episodes
from backfill.validate import parse_date
from ui import history
from ui.shell import open_console

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
settings, _ = open_console()

st.caption(
    "What the scheduled checks (`python -m backfill check`) found and sent, and coverage over time "
    "from the snapshots that checks and finished backfill runs keep."
)

link_date = None
raw = st.query_params.get("date")
if raw:
    try:
        link_date = parse_date(raw)
    except BadInput:
        st.warning(f"Ignored the link's date {raw[:40]!r}: expected YYYY-MM-DD.", icon=":material/link_off:")

try:
    checks = history.checks(settings)
    snapshots = history.snapshots(settings)
except history.HistoryUnavailable as exc:
    st.error(f"{exc} (ledger setting: BACKFILL_LEDGER)", icon=":material/error:")
    st.stop()

st.subheader("Last checks")
if checks.empty:
    st.info(
        "No check has run on this warehouse yet. Run `python -m backfill check --since 7d` by hand, "
        "from cron or from a CI schedule (see the README's Watch section)."
    )
else:
    st.dataframe(history.checks_table(checks), hide_index=True, key="history_checks")
    chosen = st.selectbox(
        "Check",
        list(checks["check_id"]),
        format_func=lambda check_id: history.check_summary(
            checks[checks["check_id"] == check_id].iloc[0].to_dict()
        ),
        key="history_check",
    )
    try:
        findings, alerts = history.check_details(settings, chosen)
    except history.HistoryUnavailable as exc:
        st.error(str(exc), icon=":material/error:")
        st.stop()
    findings_col, alerts_col = st.columns([3, 2])
    with findings_col:
        st.markdown("**What it found**")
        if findings.empty:
            st.caption("No problem in its window.")
        else:
            st.dataframe(
                findings[
                    [
                        "change",
                        "game_date",
                        "kind",
                        "subject",
                        "status",
                        "previous_status",
                        "covered",
                        "total",
                    ]
                ].rename(
                    columns={
                        "change": "Change",
                        "game_date": "Date",
                        "kind": "Kind",
                        "subject": "Stage or table",
                        "status": "Status",
                        "previous_status": "Was",
                        "covered": "Covered",
                        "total": "Total",
                    }
                ),
                hide_index=True,
                key="history_findings",
            )
    with alerts_col:
        st.markdown("**Alerts it sent**")
        if alerts.empty:
            st.caption("None: nothing new or resolved, or no channel configured.")
        else:
            st.dataframe(
                alerts[
                    ["channel", "target", "status", "attempts", "error", "new_problems", "resolved"]
                ].rename(
                    columns={
                        "channel": "Channel",
                        "target": "To",
                        "status": "Delivery",
                        "attempts": "Attempts",
                        "error": "Error",
                        "new_problems": "New",
                        "resolved": "Resolved",
                    }
                ),
                hide_index=True,
                key="history_alerts",
            )
            with st.expander("Message"):
                st.text(alerts.iloc[0]["message"])

st.subheader("Coverage over time")
if snapshots.empty:
    st.caption("No snapshot yet: every check and every finished run keeps one.")
else:
    st.caption(
        "Player-game coverage of the dates that checks and runs have measured, as it stood after each "
        "snapshot (each date counts with its latest figures so far)."
    )
    by = st.segmented_control(
        "Over time, by", ["month", "stage"], default="month", key="history_by", format_func=str.capitalize
    )
    stages = list(dict.fromkeys(snapshots["stage"]))  # pipeline order, as measured; the last is downstream
    series = coverage_over_time(snapshots, by="stage" if by == "stage" else "period")
    if by == "stage":
        chart_data, color = series, "stage"
    else:
        stage = st.selectbox("Stage", stages, index=len(stages) - 1, key="history_stage")
        months = sorted(series["period"].dropna().unique())
        picked = st.multiselect("Months", months, default=months[-3:], key="history_months")
        chart_data = series[(series["stage"] == stage) & series["period"].isin(picked)]
        color = "period"
    chart = (
        alt.Chart(chart_data)
        .mark_line(point=True)
        .encode(
            x=alt.X("taken_at:T", title="Snapshot time"),
            y=alt.Y("coverage_pct:Q", title="Player-game coverage %", scale=alt.Scale(zero=False)),
            color=alt.Color(f"{color}:N", title=color.capitalize()),
            tooltip=["taken_at:T", f"{color}:N", "coverage_pct:Q", "covered:Q", "total:Q", "gap_dates:Q"],
        )
    )
    st.altair_chart(chart, key="history_chart")

st.subheader("Gaps: when they appeared and when they were fixed")
episodes = gap_episodes(snapshots)
if link_date is not None:
    episodes = episodes[episodes["game_date"] == link_date]
    st.caption(f"Only {link_date} (from the link).")
if episodes.empty:
    st.caption("No gap seen by a check or a run" + (" on that date." if link_date else " yet."))
else:
    st.caption(
        "A gap appears at the first snapshot with the date missing, blocked or partial, and is fixed at the "
        "next snapshot without; 'Fixed by' names the check or the backfill run that measured it."
    )
    st.dataframe(history.episodes_table(episodes), hide_index=True, key="history_episodes")
