"""Overview: headline figures and the team's monthly coverage table."""

import streamlit as st

from backfill.seasons import season_of
from ui import data, history, stages, tables
from ui.format import pct_text, seasons_text
from ui.shell import open_console, require_data_range

GAP_LINKS = 12  # gap dates linked here; the Coverage page shows every one

# app.py opened the console already; again here (cheap, cached) so a page that Streamlit ran
# without app.py hands over to it (see ui.shell.open_console).
settings, _ = open_console(__file__)
start, end = require_data_range(settings)
daily = data.daily_coverage(settings, start, end)
monthly = data.monthly_coverage(settings, start, end)
stale = data.stale_counts(settings, start, end)
gaps = tables.gap_dates(daily)
game_days = tables.game_days(daily)

st.title("Overview")
st.caption(f"Game dates {start} to {end}")

seasons_col, coverage_col, gaps_col, stale_col = st.columns(4)
seasons_col.metric(
    "Seasons",
    seasons_text(season_of(day) for day in game_days),
    help=f"{len(game_days)} game dates in the warehouse",
    border=True,
)
LAST = settings.pipeline.stage_names[-1]
STAGE_LABELS = stages.labels(settings)
coverage_col.metric(
    f"{STAGE_LABELS[LAST]} coverage",
    pct_text(tables.expected_coverage(daily, LAST)),
    help=f"Expected coverage of {STAGE_LABELS[LAST]} over every date: player-game coverage, bootstrap "
    "players left out.",
    border=True,
)
per_stage = ", ".join(
    f"{stage} {count}" for stage, count in gaps["stage"].value_counts().sort_index().items()
)
gaps_col.metric(
    "Gap dates",
    gaps["game_date"].nunique(),
    help=f"Dates with a stage missing, blocked or partial ({per_stage or 'none'}).",
    border=True,
)
stale_col.metric(
    "Stale rows",
    f"{int(stale['rows'].sum()):,}",
    help="Counted per category and table; a row in two categories counts twice.",
    border=True,
)

try:
    last_check = history.last_check(settings)
    check_label = f"Last check: {history.check_summary(last_check)}" if last_check else "No check has run yet"
except history.HistoryUnavailable as exc:
    check_label = f"Last check unknown: {exc}"
st.page_link("pages/history.py", label=check_label, icon=":material/monitor_heart:")

st.subheader("Monthly coverage")
st.caption(
    "Coverage % is player-game coverage (each player on each date). Players % is the team's own figure: "
    "distinct players with a row in the month, so it can read 100.0 while whole dates are missing."
)
percent = st.column_config.NumberColumn(format="%.1f")
ORDER = list(reversed(STAGE_LABELS))  # the last stage, the one people read, first
for tab, stage in zip(st.tabs([STAGE_LABELS[name] for name in ORDER]), ORDER, strict=True):
    with tab:
        st.dataframe(
            tables.monthly_table(monthly, stage),
            hide_index=True,
            column_config={"Coverage %": percent, "Expected %": percent, "Players %": percent},
            key=f"overview_monthly_{stage}",
        )

if len(gaps):
    gap_days = sorted(set(gaps["game_date"]), reverse=True)
    st.subheader("Gap dates")
    st.caption(f"Newest first; each opens the Coverage drill-down. {len(gap_days)} in all.")
    for day in gap_days[:GAP_LINKS]:
        statuses = ", ".join(
            f"{row.stage} {row.status}" for row in gaps[gaps["game_date"] == day].itertuples()
        )
        st.page_link(
            "pages/coverage.py",
            label=f"{day:%a %Y-%m-%d}: {statuses}",
            icon=":material/search:",
            query_params={"date": day.isoformat()},
        )
