"""Backfill: choose dates and stages, preview the plan, launch, and follow the run as it goes."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import datetime as dt
import uuid

import pandas as pd
import streamlit as st

from backfill import cost
from backfill.config import Settings
from backfill.errors import BackfillError, BadInput
from backfill.faults import is_transient
from backfill.gap_plan import gap_items
from backfill.holds import held_dates, held_text
from backfill.launch import preflight, submit
from backfill.ledger import RUN_ACTIVE, AlreadyLaunched, Ledger, Run
from backfill.plan import dry_run
from backfill.request import BackfillRequest
from backfill.seasons import season_label
from ui import auth, data, run_view, runs, scroll, selection, tables, url_state
from ui import stages as stage_names
from ui.format import dates_text
from ui.shell import open_console

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
SOURCES = {
    "selection": "Coverage selection",
    "gaps": "Gap dates",
    "range": "Date range",
    "typed": "Typed dates",
}
RUN_KEY = "backfill_run_id"  # the run this page follows; also in the URL as ?run=ID
NOTICE_KEY = "backfill_notice"
RUN_NOTICE_KEY = "backfill_run_notice"
PLAN_KEY = "backfill_plan"
LAUNCH_KEY = "backfill_launch_key"  # the next click's idempotency key: a repeated click launches nothing
LAUNCHED_KEY = "backfill_launched"  # (request, run id) of this session's last launch


def _error(slot, message: str | None) -> None:
    if message:
        slot.error(message[:1].upper() + message[1:], icon=":material/error:")


def _busy_warning() -> None:
    st.warning(
        "The warehouse is busy: another process, most likely a backfill, is writing to it. "
        "Try again in a moment.",
        icon=":material/hourglass_top:",
    )


def _gap_scopes(settings: Settings) -> dict[str, tuple[str, list[dt.date], list]] | None:
    """Months and seasons with gap dates, newest first: key -> (label, dates, (stage, date) gaps);
    None when busy."""
    try:
        bounds = data.data_bounds(settings)
        gaps = tables.gap_dates(data.daily_coverage(settings, *bounds)) if bounds else pd.DataFrame()
    except Exception as exc:
        if not is_transient(exc):
            raise
        _busy_warning()
        return None
    scopes: dict[str, tuple[str, list[dt.date], list]] = {}
    if gaps.empty:
        return scopes
    for season in sorted(set(gaps["season"]), reverse=True):
        in_season = gaps[gaps["season"] == season]
        for period in sorted(set(in_season["period"]), reverse=True):
            in_month = in_season[in_season["period"] == period]
            days = sorted(set(in_month["game_date"]))
            month = dt.date.fromisoformat(f"{period}-01")
            scopes[period] = (
                f"{month:%B %Y} ({len(days)} gap date{'s' if len(days) > 1 else ''})",
                days,
                list(zip(in_month["stage"], in_month["game_date"])),
            )
        days = sorted(set(in_season["game_date"]))
        scopes[f"season-{season}"] = (
            f"Season {season_label(int(season))} ({len(days)} gap date{'s' if len(days) > 1 else ''})",
            days,
            list(zip(in_season["stage"], in_season["game_date"])),
        )
    return scopes


def _dates_from_selection() -> dict | None:
    chosen = selection.selected_dates(st.session_state)
    if chosen:
        st.markdown(
            f"**{len(chosen)} date{'s' if len(chosen) > 1 else ''} selected on Coverage:** {dates_text(chosen)}"
        )
    else:
        st.info(
            "Nothing is selected on the Coverage page yet: click dates in its calendar, or choose another source.",
            icon=":material/info:",
        )
    st.page_link(
        "pages/coverage.py", label="Change the selection on Coverage", icon=":material/calendar_month:"
    )
    return {"dates": chosen} if chosen else None


def _dates_from_gaps(settings: Settings) -> dict | None:
    scopes = _gap_scopes(settings)
    if scopes is None:
        return None
    if not scopes:
        st.info("No gap dates: every date is complete, an expected bootstrap date, or without games.")
        return None
    url_state.restore("backfill_gap_scope", "scope", scopes)
    scope = st.selectbox(
        "Month or season",
        list(scopes),
        format_func=lambda key: scopes[key][0],
        key="backfill_gap_scope",
        help="Dates where a stage is missing, blocked or partial (SPEC 3).",
    )
    url_state.keep("scope", scope)
    _, days, gaps = scopes[scope]
    st.markdown(f"**{len(days)} gap date{'s' if len(days) > 1 else ''}:** {dates_text(days)}")
    st.caption("On each date only the stages with a gap there, and the stages downstream of them.")
    return {"dates": days, "only": gap_items(settings.pipeline, gaps)}


def _dates_from_range(settings: Settings) -> dict | None:
    start_col, end_col, _ = st.columns([1, 1, 2])
    start = start_col.date_input("From", value=None, format="YYYY-MM-DD", key="backfill_start")
    end = end_col.date_input("To (inclusive)", value=None, format="YYYY-MM-DD", key="backfill_end")
    if start is None or end is None:
        st.caption(f"Pick both ends; at most {settings.max_range_days} days.")
        return None
    return {"start": start, "end": end}


def _dates_from_text() -> dict | None:
    url_state.restore("backfill_typed", "dates", whole=True)
    text = st.text_input(
        "Dates",
        placeholder="2021-12-07, 2021-12-09",
        key="backfill_typed",
        help="ISO dates (YYYY-MM-DD), separated by commas.",
    )
    url_state.keep("dates", (text or "").strip())
    if not (text or "").strip():
        st.caption("Type one or more dates, separated by commas.")
        return None
    return {"dates": text}


def _launch(settings: Settings, request: BackfillRequest, who: str | None, launch_key: str) -> None:
    """Button callback: record the run and hand it to its own worker process. The key was drawn with
    the button: a second click on that drawing (a double click) is refused by the ledger, and the
    run the first click launched is followed."""
    launched = st.session_state.get(LAUNCHED_KEY)
    if launched and launched[0] == request and ledger.get_run(launched[1]).status in RUN_ACTIVE:
        return  # a click on a newer drawing of the disabled button: this very request is under way
    try:
        run_id = submit(settings, request, who, warehouse=data.warehouse(settings), launch_key=launch_key)
    except AlreadyLaunched as exc:
        run_id = exc.run_id
    except BackfillError as exc:
        run_view.notify(NOTICE_KEY, "error", f"Nothing launched: {exc}")
        return
    st.session_state.pop(LAUNCH_KEY, None)  # the next launch carries a key of its own
    st.session_state[LAUNCHED_KEY] = (request, run_id)
    st.session_state[RUN_KEY] = run_id
    st.query_params["run"] = run_id
    run_view.watch(run_id)
    run_view.notify(
        NOTICE_KEY,
        "success",
        f"Launched run {run_id}. It runs in its own process: closing the browser does not stop it.",
    )


def _followed_run(ledger: Ledger, warehouse_url: str) -> str | None:
    """The run to follow: the link's ``?run=ID`` when it names a run, else the one launched here, else
    (after a reload or in a new tab) the newest run active on this warehouse."""
    raw = st.query_params.get("run")
    if raw and raw != st.session_state.get(RUN_KEY):
        try:
            ledger.get_run(raw)
            st.session_state[RUN_KEY] = raw
        except BackfillError:
            st.warning(
                f"Ignored the link's run {raw[:40]!r}: no such run in the ledger.", icon=":material/link_off:"
            )
    run_id = st.session_state.get(RUN_KEY)
    if not run_id:
        active = sorted(ledger.active_runs_on(warehouse_url), key=lambda run: (run.created_at, run.run_id))
        if active:
            run_id = st.session_state[RUN_KEY] = active[-1].run_id
            run_view.watch(run_id)
    if run_id:
        st.query_params["run"] = run_id
    elif "run" in st.query_params:
        del st.query_params["run"]
    return run_id


def _draw_progress(ledger: Ledger, run: Run) -> None:
    run_view.status_line(run)
    run_view.progress(ledger, run, STAGE_LABELS)
    run_view.log(ledger, run)
    if run.status not in (*RUN_ACTIVE, "succeeded"):
        st.caption("Rerun what it did not finish, or resume it, from its page in Runs.")


settings, warehouse = open_console()
identity = auth.current_identity(settings)
ledger = Ledger(settings.ledger)

STAGE_LABELS = stage_names.labels(settings)
GATED = [stage for stage in settings.pipeline.backfillable if stage.gated]
GATE_LABEL = stage_names.title(settings.pipeline.upstream(GATED[0]).label) if GATED else None

st.caption(
    f"Rebuild {', '.join(STAGE_LABELS.values())} for past dates, stage by stage in dependency order: each "
    "date's work is retried on transient errors, verified afterwards, and a gated stage waits for its "
    "upstream to pass the gate."
)

st.subheader("Dates")
chosen = selection.selected_dates(st.session_state)
url_state.restore("backfill_source", "source", SOURCES)  # the form is kept in the URL
source = st.segmented_control(
    "Dates from",
    list(SOURCES),
    format_func=SOURCES.get,
    default=None if "backfill_source" in st.session_state else ("selection" if chosen else "gaps"),
    required=True,
    key="backfill_source",
)
url_state.keep("source", source)
for param, used_by in (("scope", "gaps"), ("dates", "typed")):
    if source != used_by:
        st.query_params.pop(param, None)
if source == "selection":
    dates_input = _dates_from_selection()
elif source == "gaps":
    dates_input = _dates_from_gaps(settings)
elif source == "range":
    dates_input = _dates_from_range(settings)
else:
    dates_input = _dates_from_text()
dates_slot = st.empty()

st.subheader("Stages and gate")
stages = st.pills(
    "Stages",
    list(STAGE_LABELS),
    selection_mode="multi",
    default=list(STAGE_LABELS),
    format_func=STAGE_LABELS.get,
    key="backfill_stages",
    help=f"Run in dependency order on each date: {' then '.join(STAGE_LABELS.values())}.",
)
stages_slot = st.empty()
gate_col, skip_col = st.columns([1, 2], vertical_alignment="bottom")
skip_gate = skip_col.checkbox(
    f"Skip the {GATE_LABEL} gate (operators only)" if GATED else "Skip gates (none in this pipeline)",
    key="backfill_skip_gate",
    disabled=not identity.may_act or not GATED,
    help="Run gated stages even where their upstream covers less of the date than the gate asks.",
)
gate = gate_col.number_input(
    f"{GATE_LABEL} gate: minimum {GATE_LABEL} coverage (%)" if GATED else "Gate (none in this pipeline)",
    value=float(GATED[0].gate_min_upstream_pct) if GATED else 0.0,
    step=1.0,
    format="%.1f",
    key="backfill_gate",
    disabled=skip_gate or not GATED,
    help="Before a gated stage runs for a date, its upstream must cover at least this share of its "
    "players; below it the date is blocked, not failed.",
)
gate_slot = st.empty()

with st.expander("Retries and batches"):
    attempts_col, delays_col, batch_col = st.columns(3)
    max_attempts = attempts_col.number_input(
        "Attempts per statement",
        value=settings.max_attempts,
        step=1,
        key="backfill_max_attempts",
        help="Transient errors (timeouts, resets, unavailable) are retried; permanent ones fail at once.",
    )
    attempts_slot = attempts_col.empty()
    retry_delays = delays_col.text_input(
        "Retry delays (seconds)",
        value=", ".join(f"{delay:g}" for delay in settings.retry_delays),
        key="backfill_retry_delays",
        help="Waits before each retry, with jitter; the last is repeated if there are more attempts.",
    )
    delays_slot = delays_col.empty()
    batch_size = batch_col.number_input(
        "Dates per batch",
        value=settings.batch_size,
        step=1,
        key="backfill_batch_size",
        help="Each batch is a few set-based statements per stage; cancel takes effect between batches.",
    )
    batch_slot = batch_col.empty()

request, errors = runs.check_request(
    settings,
    dates_input or {},
    stages=stages or [],
    min_upstream_coverage_pct=gate if GATED else None,
    skip_gates=skip_gate,
    max_attempts=max_attempts,
    retry_delays=retry_delays,
    batch_size=batch_size,
)
if dates_input is None:
    request = None  # the source above already says what is missing
else:
    _error(dates_slot, errors.get("dates"))
for slot, field in [
    (stages_slot, "stages"),
    (gate_slot, "min_upstream_coverage_pct"),
    (attempts_slot, "max_attempts"),
    (delays_slot, "retry_delays"),
    (batch_slot, "batch_size"),
]:
    _error(slot, errors.get(field))

st.subheader("Preview and launch")
refusal = data.write_refusal(settings)
if refusal is not None:  # a launch would be refused before any write: say so instead of offering it
    st.error(refusal, icon=":material/block:")
holds = held_dates(ledger, warehouse.url, request.items()) if request is not None else []
# Your own new run holds these dates because you launched it: said as such, never as "held by".
launched = runs.own_launch(st.session_state.get(LAUNCHED_KEY), request, holds)
holds = [hold for hold in holds if hold.run_id != launched]
if request is not None:
    st.caption(runs.params_text(request.to_params(), STAGE_LABELS, settings.pipeline))
if holds:
    st.warning(f"Cannot launch: {held_text(holds, STAGE_LABELS)}.", icon=":material/lock:")
auth.explain(identity)
with st.container(horizontal=True):
    dry_clicked = st.button(
        "Dry run",
        key="backfill_dry_run",
        icon=":material/preview:",
        disabled=request is None,
        help="What the backfill would do, measured now (gate, coverage, stale rows); writes nothing.",
    )
    st.button(
        "Launch backfill",
        key="backfill_launch",
        type="primary",
        icon=":material/rocket_launch:",
        disabled=request is None
        or not identity.may_act
        or bool(holds)
        or launched is not None
        or refusal is not None,
        help=identity.reason
        if not identity.may_act
        else (
            f"Launched already: run {launched} is backfilling these dates (below)."
            if launched
            else (
                "Another run holds some of these dates (see above)."
                if holds
                else refusal or "Starts the run in its own process."
            )
        ),
        on_click=_launch,
        args=(settings, request, identity.who, st.session_state.setdefault(LAUNCH_KEY, uuid.uuid4().hex)),
    )
run_view.show_notice(NOTICE_KEY)

if dry_clicked and request is not None:
    try:
        warnings = preflight(settings, data.warehouse(settings), request)
        plan = dry_run(data.warehouse(settings), settings, request, holds)
        st.session_state[PLAN_KEY] = (
            request,
            plan,
            cost.estimate_note(lambda: cost.backfill_estimate(data.warehouse(settings), settings, request)),
            warnings,
        )
    except BadInput as exc:
        st.session_state.pop(PLAN_KEY, None)
        st.error(str(exc), icon=":material/block:")
    except Exception as exc:
        if not is_transient(exc):
            raise
        _busy_warning()
planned = st.session_state.get(PLAN_KEY)
if planned is not None:
    planned_request, plan, note, warnings = planned
    if planned_request == request:
        st.markdown(f"**Dry run:** {runs.plan_summary(plan)}")
        if note is not None:
            (st.warning if note.warn else st.caption)(note.text)
        for warning in warnings:
            st.warning(warning, icon=":material/warning:")
        st.dataframe(
            runs.plan_table(plan, STAGE_LABELS),
            hide_index=True,
            key="backfill_plan_table",
            column_config={
                "Coverage now %": st.column_config.NumberColumn(format="%.1f"),
                "Gate": st.column_config.TextColumn(width="large"),
            },
        )
    elif request is not None:
        st.caption("The last dry run was of other inputs; run it again to preview these.")

run_id = _followed_run(ledger, warehouse.url)
if run_id:
    followed = ledger.get_run(run_id)
    st.subheader(f"Run {run_id}", anchor="followed-run")
    scroll.scroll_once("followed-run", f"backfill?run={run_id}")
    st.caption(
        f"Started by {followed.created_by} at {runs.when_text(followed.created_at)}: "
        f"{runs.params_text(followed.params, STAGE_LABELS, settings.pipeline)}"
    )
    with st.container(horizontal=True, vertical_alignment="center"):
        if followed.status in RUN_ACTIVE:
            run_view.cancel_button(
                settings, followed, identity, key="backfill_cancel", notice_key=RUN_NOTICE_KEY
            )
        st.page_link(
            "pages/runs.py",
            label="Open in Runs",
            icon=":material/history:",
            query_params={"run": run_id},
        )
    run_view.show_notice(RUN_NOTICE_KEY)
    run_view.follow(ledger, run_id, lambda run: _draw_progress(ledger, run), key="backfill_progress")
