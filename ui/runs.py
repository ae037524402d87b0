"""Backfill runs and plans for people: tables, summaries and the dates x stages status grid.

Pure functions of what the ledger and the dry run return; no Streamlit here, so they are tested
without a running app.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from backfill.config import Settings
from backfill.cost import human_bytes
from backfill.errors import BadInput
from backfill.holds import Hold
from backfill.ledger import ITEM_FINAL, Run
from backfill.pipeline import Pipeline, builtin_pipeline
from backfill.request import BackfillRequest
from ui.format import dates_text, plural
from ui.stages import title

if TYPE_CHECKING:
    import altair as alt

# Altair (0.3-0.7 s to import on this machine) is imported by the functions that draw the grid, so a
# page that draws none (Overview, Gaps, Runs before any run) does not wait for it on a fresh server.

Labels = Mapping[str, str] | None
"""Headings of the stages by name (``ui.stages.labels``); None: the names, capitalised."""


def _label(stage: str, labels: Labels) -> str:
    return (labels or {}).get(stage) or title(stage)


ITEM_COLORS = {
    "pending": "#d9dee3",
    "running": "#4a90c2",
    "done": "#1b7837",
    "skipped": "#e8e8e8",
    "blocked": "#7b5ea7",
    "failed": "#c62828",
    "cancelled": "#f4a261",
}
"""Work-item statuses in the grid's key order, with their colours (green, purple and red as on Coverage)."""

RUN_BADGE_COLORS = {
    "queued": "gray",
    "running": "blue",
    "succeeded": "green",
    "blocked": "violet",
    "failed": "red",
    "cancelled": "orange",
    "interrupted": "orange",
    "refused": "red",
}
"""``st.badge`` colour of each run status."""

GRID_STEP_PX = 28
"""Width of one date's column in the status grid, up to ``GRID_MAX_STEPPED_DATES`` dates."""

GRID_MAX_STEPPED_DATES = 30
"""Up to this many dates the grid is drawn in a box of fixed-width columns; beyond, at page width."""

GRID_LABELS_PX = 110
"""Width of the grid's stage labels."""

GRID_ROW_PX = 28
"""Height of one stage's row in the status grid."""

GRID_FRAME_PX = 70
"""Height of the grid's date labels and padding: Streamlit fits the whole chart, not just its cells,
into the height it is given, so this is added to the rows' own height."""

KEY_BOX_PX = 560
"""Width of the box of the grid's colour key."""


# -- the request form -------------------------------------------------------------------------


def check_request(
    settings: Settings,
    dates: Mapping[str, Any],
    *,
    today: Callable[[], dt.date] = dt.date.today,
    **fields: Any,
) -> tuple[BackfillRequest | None, dict[str, str]]:
    """The request a form describes, or None and a one-line message per field at fault.

    ``dates`` holds ``dates`` or ``start`` and ``end``; ``fields`` are the other arguments of
    :meth:`BackfillRequest.build`. Each is checked by ``build`` on its own (dates alone; any other
    field with yesterday as the date), so the message can sit beside the control that caused it, in
    the backend's own words.
    """
    errors = {}
    try:
        BackfillRequest.build(settings, **dates, today=today)
    except BadInput as exc:
        errors["dates"] = str(exc)
    probe = [today() - dt.timedelta(days=1)]
    for name, value in fields.items():
        try:
            BackfillRequest.build(settings, dates=probe, **{name: value}, today=today)
        except BadInput as exc:
            errors[name] = str(exc)
    if errors:
        return None, errors
    return BackfillRequest.build(settings, **dates, **fields, today=today), {}


# -- one run ----------------------------------------------------------------------------------


def own_launch(
    launched: tuple[BackfillRequest, str] | None, request: BackfillRequest | None, holds: Iterable[Hold]
) -> str | None:
    """The run this session launched for this very request while it still holds its dates (its
    launch is done: the button says so), else None. Its holds are not "held by" another run."""
    if launched is None or request is None:
        return None
    launched_request, run_id = launched
    if launched_request != request or run_id not in {hold.run_id for hold in holds}:
        return None
    return run_id


def when_text(iso: str | None) -> str:
    """``2026-11-27 10:47:02 UTC`` from the ledger's ISO timestamps; a dash for none."""
    if not iso:
        return "–"
    return f"{dt.datetime.fromisoformat(iso).astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC"


def took_text(run: Run) -> str:
    """How long a finished run took, ``1.2 s`` or ``3 min 05 s``; empty while it has not finished."""
    if not (run.started_at and run.finished_at):
        return ""
    seconds = (
        dt.datetime.fromisoformat(run.finished_at) - dt.datetime.fromisoformat(run.started_at)
    ).total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"


def span_text(days: Iterable[str | dt.date]) -> str:
    """``2021-12-01 to 2021-12-31`` for consecutive dates, else the dates listed."""
    ordered = sorted(dt.date.fromisoformat(str(day)) for day in days)
    if not ordered:
        return "no dates"
    consecutive = (ordered[-1] - ordered[0]).days == len(ordered) - 1
    if len(ordered) > 2 and consecutive:
        return f"{ordered[0]} to {ordered[-1]}"
    return dates_text(ordered)


def gate_text(params: Mapping[str, Any], pipeline: Pipeline | None = None) -> str:
    """The gate of a request: ``90%``, ``skipped``, or ``none`` when no stage of it is gated."""
    request = BackfillRequest.from_params(dict(params) | {"dates": [], "stages": params.get("stages", [])})
    if request.skip_gates:
        return "skipped"
    if request.min_upstream_coverage_pct is not None:
        return f"{request.min_upstream_coverage_pct:g}%"
    pipeline = pipeline or builtin_pipeline()
    gates = {
        f"{stage.gate_min_upstream_pct:g}%"
        for stage in pipeline.backfillable
        if stage.gated and stage.name in request.stages
    }
    return ", ".join(sorted(gates)) or "none"


def stages_text(stages: Iterable[str], labels: Labels = None) -> str:
    return ", ".join(_label(stage, labels) for stage in stages)


def params_text(params: Mapping[str, Any], labels: Labels = None, pipeline: Pipeline | None = None) -> str:
    """A request in one line: dates, stages, gate, retries and batch size."""
    dates = params.get("dates", [])
    delays = "/".join(f"{float(delay):g}" for delay in params.get("retry_delays", [])) or "none"
    only = params.get("only") or []
    scope = (
        f"{plural(len(only), 'work item')} on {plural(len(dates), 'gap date')} ({span_text(dates)}), "
        f"each date's gap stages and what depends on them among {stages_text(params.get('stages', []), labels)}"
        if only
        else f"{plural(len(dates), 'date')} ({span_text(dates)}) x {stages_text(params.get('stages', []), labels)}"
    )
    return (
        f"{scope}; gate {gate_text(params, pipeline)}; "
        f"up to {plural(int(params.get('max_attempts') or 0), 'attempt')} (retry delays {delays} s); "
        + (
            f"batches of {plural(int(params['batch_size']), 'date')}"
            if params.get("batch_size")
            else "batches sized by the work"
        )
    )


def touches(run: Run, day: dt.date) -> bool:
    """Whether a run's request included a date."""
    return day.isoformat() in run.params.get("dates", [])


HISTORY_COLUMNS = [
    "Run",
    "Status",
    "Outcome",
    "By",
    "Created",
    "Took",
    "Dates",
    "Stages",
    "Gate",
    "Statements",
    "Billed",
    "Rerun of",
]


def history_table(
    runs: Iterable[Run], labels: Labels = None, pipeline: Pipeline | None = None
) -> pd.DataFrame:
    """One row per run, newest first as given: who, when, parameters and outcome."""
    rows = [
        {
            "Run": run.run_id,
            "Status": run.status,
            "By": run.created_by,
            "Created": when_text(run.created_at),
            "Took": took_text(run),
            "Dates": f"{len(run.params.get('dates', []))}: {span_text(run.params.get('dates', []))}",
            "Stages": stages_text(run.params.get("stages", []), labels),
            "Gate": gate_text(run.params, pipeline),
            "Statements": run.statements,
            # Bytes BigQuery billed for the run's jobs; empty where nothing is billed (DuckDB).
            "Billed": human_bytes(int(run.params["bytes_billed"])) if "bytes_billed" in run.params else "",
            "Outcome": run.message or "",
            "Rerun of": run.parent_run_id or "",
        }
        for run in runs
    ]
    return pd.DataFrame(rows, columns=HISTORY_COLUMNS)


RUN_BACKGROUNDS = {
    "queued": "#e8e8e8",
    "running": "#dbeaf5",
    "succeeded": "#d9f0d3",
    "blocked": "#e4dbf0",
    "failed": "#f8d0d0",
    "refused": "#f8d0d0",
    "cancelled": "#fde2c8",
    "interrupted": "#fde2c8",
}
"""Table cell background of each run status (the badge colours, lightened for text on them)."""


def styled_history(table: pd.DataFrame):
    """The history table with each status on its colour."""
    return table.style.map(
        lambda status: f"background-color: {RUN_BACKGROUNDS[status]}" if status in RUN_BACKGROUNDS else "",
        subset=["Status"],
    )


def filtered(runs: Iterable[Run], statuses: Iterable[str] = (), users: Iterable[str] = ()) -> list[Run]:
    """The runs of any of these statuses and by any of these users (an empty filter keeps all)."""
    wanted_statuses, wanted_users = set(statuses), set(users)
    return [
        run
        for run in runs
        if (not wanted_statuses or str(run.status) in wanted_statuses)
        and (not wanted_users or run.created_by in wanted_users)
    ]


def run_label(run: Run) -> str:
    """A run in a picker: id, who and how many dates. No status: Streamlit 1.67 kept showing a
    picked option's old label after its text changed (a run going from queued to done)."""
    dates = len(run.params.get("dates", []))
    return f"{run.run_id} · {run.created_by} · {dates} date{'s' if dates != 1 else ''}"


# -- work items -------------------------------------------------------------------------------


def finished(counts: Mapping[str, int]) -> tuple[int, int]:
    """(finished items, all items) from a run's item counts by status."""
    return sum(n for status, n in counts.items() if status in ITEM_FINAL), sum(counts.values())


def counts_text(counts: Mapping[str, int]) -> str:
    """``60 done, 2 skipped``, statuses in the grid's key order."""
    order = list(ITEM_COLORS)
    ordered = sorted(counts.items(), key=lambda item: order.index(item[0]) if item[0] in order else 99)
    return ", ".join(f"{n} {status}" for status, n in ordered if n)


def progress_text(counts: Mapping[str, int]) -> str:
    """``40 of 62 work items finished: 38 done, 2 skipped``."""
    done, total = finished(counts)
    return f"{done} of {total} work items finished: {counts_text(counts) or 'none yet'}"


ITEM_COLUMNS = {
    "game_date": "Date",
    "stage": "Stage",
    "status": "Status",
    "attempts": "Attempts",
    "duration_s": "Seconds",
    "rows_written": "Rows written",
    "coverage_before": "Before %",
    "coverage_after": "After %",
    "error_class": "Error class",
    "error_message": "Error",
}
"""Columns of a run's items table and their headings."""


def items_table(items: list[dict[str, Any]], labels: Labels = None) -> pd.DataFrame:
    """A run's work items, dates in order and stages in dependency order, headings as people read them."""
    frame = pd.DataFrame(items, columns=list(ITEM_COLUMNS))
    frame["stage"] = frame["stage"].map(lambda stage: _label(stage, labels))
    frame[["error_class", "error_message"]] = frame[["error_class", "error_message"]].fillna("")
    return frame.rename(columns=ITEM_COLUMNS).reset_index(drop=True)


def grid_data(items: list[dict[str, Any]], labels: Labels = None) -> pd.DataFrame:
    """The status grid's cells: one per (date, stage) with the texts its tooltip shows."""
    frame = pd.DataFrame(items, columns=list(ITEM_COLUMNS))
    frame["stage_label"] = frame["stage"].map(lambda stage: _label(stage, labels))
    frame["coverage_text"] = [
        f"{_pct(before)} → {_pct(after)}"
        for before, after in zip(frame["coverage_before"], frame["coverage_after"])
    ]
    frame["error_text"] = [
        f"[{kind}] {message}" if kind else (message or "")
        for kind, message in zip(frame["error_class"], frame["error_message"])
    ]
    frame["duration_text"] = [
        "" if pd.isna(seconds) else f"{seconds:.1f} s" for seconds in frame["duration_s"]
    ]
    return frame


def status_grid(items: list[dict[str, Any]], labels: Labels = None) -> alt.Chart:
    """Dates x stages, each cell coloured by its status; the tooltip has every figure of the item.

    No Vega legend (Streamlit fits a whole chart into its height, and a legend squeezed the cells):
    :func:`status_key` draws the colours once beside it. Draw it at the width of its box
    (:func:`grid_box_width`): Streamlit 1.67 drew no cells for a chart given its own pixel width.
    """
    import altair as alt

    data = grid_data(items, labels)
    stages = max(data["stage"].nunique(), 1)
    chart = (
        alt.Chart(data)
        .mark_rect(stroke="white", strokeWidth=1.5)
        .encode(
            x=alt.X(
                "game_date:O",
                title=None,
                sort="ascending",
                axis=alt.Axis(
                    labelExpr="slice(datum.value, 5)", labelAngle=-90, labelOverlap=True, ticks=False
                ),
            ),
            y=alt.Y(
                "stage_label:N",
                title=None,
                sort=list(dict.fromkeys(data["stage_label"])),  # items come in dependency order
                axis=alt.Axis(labelLimit=120, ticks=False),
            ),
            color=_status_color(),
            tooltip=[
                alt.Tooltip("game_date:N", title="Date"),
                alt.Tooltip("stage_label:N", title="Stage"),
                alt.Tooltip("status:N", title="Status"),
                alt.Tooltip("attempts:Q", title="Attempts"),
                alt.Tooltip("duration_text:N", title="Duration"),
                alt.Tooltip("rows_written:Q", title="Rows written", format=","),
                alt.Tooltip("coverage_text:N", title="Coverage before → after"),
                alt.Tooltip("error_text:N", title="Error"),
            ],
        )
    )
    return chart.properties(height=GRID_ROW_PX * stages + GRID_FRAME_PX)


def status_key() -> alt.Chart:
    """The grid's colour key: one labelled swatch per item status, in order."""
    from ui import charts

    return charts.swatch_key("status", ITEM_COLORS, height=20 + 45)


def _status_color() -> alt.Color:
    from ui import charts

    return charts.categorical_color("status", ITEM_COLORS)


def grid_box_width(items: list[dict[str, Any]]) -> int | str:
    """Width of the box the grid is drawn in: fixed-width columns for a few dates, else the page's."""
    dates = len({item["game_date"] for item in items})
    return dates * GRID_STEP_PX + GRID_LABELS_PX if dates <= GRID_MAX_STEPPED_DATES else "stretch"


def log_text(events: list[dict[str, Any]]) -> str:
    """Log lines of a run, oldest first: ``10:47:03 warning  message``."""
    lines = []
    for event in events:
        at = dt.datetime.fromisoformat(event["at"]).astimezone(dt.UTC)
        lines.append(f"{at:%H:%M:%S} {event['level']:<8}{event['message']}")
    return "\n".join(lines)


def _pct(value: Any) -> str:
    return "–" if value is None or pd.isna(value) else f"{float(value):.1f}%"


# -- the dry run ------------------------------------------------------------------------------

PLAN_COLUMNS = {
    "game_date": "Date",
    "stage": "Stage",
    "action": "Action",
    "status_now": "Status now",
    "covered_text": "Covered now",
    "coverage_now_pct": "Coverage now %",
    "stale_rows_to_go": "Stale rows to go",
    "gate": "Gate",
}
"""Columns of the dry run's plan and their headings (the gate's text carries MLFS coverage now)."""


def plan_table(plan: pd.DataFrame, labels: Labels = None) -> pd.DataFrame:
    """The dry run's plan with headings as people read them."""
    table = plan.assign(
        stage=plan["stage"].map(lambda stage: _label(stage, labels)),
        covered_text=[
            f"{int(c):,} / {int(t):,}" for c, t in zip(plan["players_covered"], plan["players_total"])
        ],
    )
    return table[list(PLAN_COLUMNS)].rename(columns=PLAN_COLUMNS).reset_index(drop=True)


def plan_summary(plan: pd.DataFrame) -> str:
    """One line: how many items of each action and how many stale rows would go."""
    actions = plan["action"].value_counts()
    per_action = ", ".join(f"{n} {action}" for action, n in actions.items())
    dates = plan["game_date"].nunique()
    stale_rows = int(plan["stale_rows_to_go"].sum())
    return (
        f"{len(plan)} work items on {dates} date{'s' if dates != 1 else ''}: {per_action}; "
        f"{stale_rows:,} stale row{'s' if stale_rows != 1 else ''} would go. Nothing was written."
    )
