"""Overview: headline figures, the months with gaps worst first, and the team's monthly coverage table."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import streamlit as st

from backfill.ledger import Ledger
from backfill.seasons import season_of
from backfill.severity import not_yet_backfilled
from ui import data, history, lineage, stages, tables
from ui.format import NO_VALUE, STATUS_BACKGROUNDS, pct_text, plural, seasons_text, status_text
from ui.shell import open_console, require_data_range

METRIC_PX = 230  # a headline card: its label and value whole
GAP_LINKS = 12  # gap dates linked here; the Coverage page shows every one

# The settings and warehouse app.py opened (cached); app.py drew the title before anything else.
settings, warehouse = open_console()
start, end = require_data_range(settings)
daily = data.daily_coverage(settings, start, end)
monthly = data.monthly_coverage(settings, start, end)
stale = data.stale_counts(settings, start, end)
gaps = tables.gap_dates(daily)
game_days = tables.game_days(daily)
# A new stage with no row at all is one line below, not a gap on every date.
NEW_STAGES = not_yet_backfilled(monthly)
gaps = gaps[~gaps["stage"].isin(NEW_STAGES)]

st.caption(f"Game dates {start} to {end}")

# Fixed-width cards that wrap two by two in a narrow window (at 1024 px four columns cut "2021-22").
headline = st.container(horizontal=True)
seasons_col = coverage_col = gaps_col = stale_col = headline
seasons_col.metric(
    "Seasons",
    seasons_text(season_of(day) for day in game_days),
    help=f"{len(game_days)} game dates in the warehouse",
    border=True,
    width=METRIC_PX,
)
LAST = settings.pipeline.stage_names[-1]
STAGE_LABELS = stages.labels(settings)
TABLE_LABELS = stages.table_labels(settings)


def _gate_reason(row) -> str:
    """`` (MLFS 84.5% < 90% gate)`` after a blocked status: why the gate held the date."""
    if row.status != "blocked":
        return ""
    upstream = stages.upstream_label(settings, row.stage)
    gate = settings.pipeline.stage(row.stage).gate_min_upstream_pct
    if upstream is None or gate is None:
        return ""
    return f" ({upstream} {pct_text(row.upstream_coverage_pct)} < {gate:g}% gate)"


coverage_col.metric(
    f"{STAGE_LABELS[LAST]} coverage",
    pct_text(tables.expected_coverage(daily, LAST)),
    help=f"Expected coverage of {STAGE_LABELS[LAST]} over every date: player-game coverage, bootstrap "
    "players left out.",
    border=True,
    width=METRIC_PX,
)
per_stage = ", ".join(
    f"{STAGE_LABELS.get(stage, stage)} {count}"
    for stage, count in gaps["stage"].value_counts().sort_index().items()
)
gaps_col.metric(
    "Gap dates",
    gaps["game_date"].nunique(),
    help=f"Dates with a stage missing, blocked or partial ({per_stage or 'none'}).",
    border=True,
    width=METRIC_PX,
)
stale_col.metric(
    "Stale rows",
    f"{int(stale['rows'].sum()):,}",
    help="Counted per category and table; a row in two categories counts twice.",
    border=True,
    width=METRIC_PX,
)

try:
    last_check = history.last_check(settings)
    check_label = f"Last check: {history.check_summary(last_check)}" if last_check else "No check has run yet"
except history.HistoryUnavailable as exc:
    check_label = f"Last check unknown: {exc}"
st.page_link("pages/history.py", label=check_label, icon=":material/monitor_heart:")

percent = st.column_config.NumberColumn(format="%.1f")


def _coloured(table):
    """A table of months with each status on its colour and no raw None."""
    table = table.fillna({column: NO_VALUE for column in ("Note", "Gap dates") if column in table})
    percents = {column: "{:.1f}" for column in ("Coverage %", "Expected %", "Players %") if column in table}
    return table.style.map(
        lambda status: (
            f"background-color: {STATUS_BACKGROUNDS[status]}" if status in STATUS_BACKGROUNDS else ""
        ),
        subset=["Status"],
    ).format(percents, na_rep=NO_VALUE)


with st.expander("Pipeline: stages and their coverage", expanded=False):
    st.caption(
        f"As the pipeline file defines it; coverage of {start} to {end}, coloured by the worst status."
    )
    st.graphviz_chart(lineage.lineage_dot(settings.pipeline, daily, STAGE_LABELS, NEW_STAGES))

worst = tables.worst_months_table(monthly, STAGE_LABELS)
if len(worst) or NEW_STAGES:
    st.subheader("Months with gaps, worst first")
if len(worst):
    st.caption(
        "Missing before blocked before partial, then the lowest coverage; the monthly tables below "
        "keep calendar order."
    )
    st.table(_coloured(worst), hide_index=True)  # a static table: its text wraps, nothing cut at 1024 px
for name in NEW_STAGES:
    stage = settings.pipeline.stage(name)
    st.page_link(
        "pages/backfill.py",
        label=f"{STAGE_LABELS.get(name, name)}: not yet backfilled (no row in {stage.table_name} "
        f"from {start} to {end})",
        icon=":material/hourglass_empty:",
        help="A stage no run has filled yet; backfill it from the Backfill page.",
    )


st.subheader("Monthly coverage")
st.caption(
    "Coverage % is player-game coverage (each player on each date). Players % is the team's own figure: "
    "distinct players with a row in the month, so it can read 100.0 while whole dates are missing."
)
ORDER = list(reversed(STAGE_LABELS))  # the last stage, the one people read, first
for tab, stage in zip(st.tabs([STAGE_LABELS[name] for name in ORDER]), ORDER, strict=True):
    with tab:
        st.dataframe(
            _coloured(tables.monthly_table(monthly, stage)),
            hide_index=True,
            column_config={"Coverage %": percent, "Expected %": percent, "Players %": percent},
            key=f"overview_monthly_{stage}",
        )

if len(gaps):
    gap_days = sorted(set(gaps["game_date"]), reverse=True)
    st.subheader("Gap dates")
    st.caption(
        f"Newest first; each opens the Coverage drill-down. {plural(len(gap_days), 'gap date')} in all."
    )
    for day in gap_days[:GAP_LINKS]:
        statuses = ", ".join(
            f"{STAGE_LABELS.get(row.stage, row.stage)} {status_text(row.status)}{_gate_reason(row)}"
            for row in gaps[gaps["game_date"] == day].itertuples()
        )
        st.page_link(
            "pages/coverage.py",
            label=f"{day:%a %Y-%m-%d}: {statuses}",
            icon=":material/search:",
            query_params={"date": day.isoformat()},
        )

if len(stale):
    st.subheader("Stale rows")
    st.caption("Per table and category (a row in two categories is in both); each opens Gaps & stale rows.")
    for table, per_table in stale.groupby("table_name"):
        counts = per_table.groupby("category")["rows"].sum()
        st.page_link(
            "pages/gaps.py",
            label=f"{TABLE_LABELS.get(table, table)}: "
            + ", ".join(f"{category} {int(rows):,}" for category, rows in counts.items() if rows),
            icon=":material/rule:",
        )

active = Ledger(settings.ledger).active_runs_on(warehouse.url)
if active:
    st.subheader("Active runs")
    for run in active:
        st.page_link(
            "pages/backfill.py",
            label=f"Run {run.run_id} ({run.status}), started by {run.created_by}",
            icon=":material/play_circle:",
            query_params={"run": run.run_id},
        )
