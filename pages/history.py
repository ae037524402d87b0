"""History: the scheduled checks and their alerts, coverage over time, and when gaps appeared and were fixed."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import altair as alt
import streamlit as st

from backfill.errors import BadInput
from backfill.history import coverage_over_time, gap_episodes
from backfill.validate import parse_date
from ui import history
from ui import stages as stage_names
from ui.shell import open_console

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
settings, _ = open_console()
STAGE_LABELS = stage_names.labels(settings)

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
                history.findings_table(findings, STAGE_LABELS), hide_index=True, key="history_findings"
            )
    with alerts_col:
        st.markdown("**Alerts it sent**")
        if alerts.empty:
            st.caption("None: nothing new or resolved, or no channel configured.")
        else:
            st.dataframe(history.alerts_table(alerts), hide_index=True, key="history_alerts")
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
    series = series.assign(stage=[STAGE_LABELS.get(name, name) for name in series["stage"]])
    stages = [STAGE_LABELS.get(name, name) for name in stages]
    if by == "stage":
        chart_data, color = series, "stage"
    else:
        stage = st.selectbox("Stage", stages, index=len(stages) - 1, key="history_stage")
        months = sorted(series["period"].dropna().unique())
        picked = st.multiselect("Months", months, default=months[-3:], key="history_months")
        chart_data = series[(series["stage"] == stage) & series["period"].isin(picked)]
        color = "period"
    # Times in UTC on a 24-hour clock, said so; the coverage axis spans the data, not 0 to 100.
    low, high = chart_data["coverage_pct"].min(), chart_data["coverage_pct"].max()
    span = [max(0.0, float(low) - 1.0), min(100.0, float(high) + 1.0)] if len(chart_data) else [0.0, 100.0]
    chart = (
        alt.Chart(chart_data)
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "taken_at:T",
                title="Snapshot time (UTC)",
                scale=alt.Scale(type="utc"),
                axis=alt.Axis(format="%m-%d %H:%M", formatType="utc"),
            ),
            y=alt.Y(
                "coverage_pct:Q", title="Player-game coverage %", scale=alt.Scale(domain=span, nice=False)
            ),
            color=alt.Color(f"{color}:N", title=color.capitalize()),
            tooltip=[
                alt.Tooltip("taken_at:T", title="Snapshot", format=history.SNAPSHOT_TIME, formatType="utc"),
                alt.Tooltip(f"{color}:N", title=color.capitalize()),
                alt.Tooltip("coverage_pct:Q", title="Coverage %", format=".1f"),
                alt.Tooltip("covered:Q", title="Covered"),
                alt.Tooltip("total:Q", title="Total"),
                alt.Tooltip("gap_dates:Q", title="Gap dates"),
            ],
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
    st.dataframe(history.episodes_table(episodes, STAGE_LABELS), hide_index=True, key="history_episodes")
