"""Runs: the backfill history, each run's dates x stages, and one-click rerun, resume and cancel."""

from ui.entry import through_app

through_app()  # first: a fresh server's first request may run this file alone

import datetime as dt
import uuid
from functools import partial

import streamlit as st

from backfill import rerun_rules
from backfill.config import Settings
from backfill.errors import BackfillError, BadInput
from backfill.launch import rerun, rerun_with_upstream, resume_detached
from backfill.ledger import RUN_ACTIVE, AlreadyLaunched, Ledger, Run
from backfill.replay import replay_changes, replay_refusal
from backfill.upstream_rerun import blocked_items, waiting_for
from backfill.validate import parse_date
from ui import auth, run_view, runs, scroll, stages
from ui.format import plural
from ui.shell import open_console

# Page scripts get no bare-string docstrings below the first: Streamlit's magic would print them.
HISTORY_LIMIT = 200  # runs read from the ledger, newest first
SELECTED_KEY = "runs_selected"  # the run shown below the history; also in the URL as ?run=ID
NOTICE_KEY = "runs_notice"
LAUNCH_KEY = "runs_launch_key"  # the next rerun click's idempotency key: a repeated click reruns nothing


def _started(new_id: str) -> None:
    """After a rerun was recorded (or found, for a repeated click): the next click gets a new key,
    and the new run is followed."""
    st.session_state.pop(LAUNCH_KEY, None)
    run_view.watch(new_id)
    st.session_state[SELECTED_KEY] = new_id


def _rerun(settings: Settings, run_id: str, who: str | None, only_transient: bool, key: str) -> None:
    """Button callback: a new run of what this run did not finish, then show the new run."""
    what = "transient failures" if only_transient else "failed, blocked and cancelled dates"
    try:
        new_id = str(rerun(settings, run_id, who, only_transient=only_transient, launch_key=key))
    except AlreadyLaunched as exc:
        new_id = exc.run_id
    except BackfillError as exc:
        run_view.notify(NOTICE_KEY, "error", f"Not rerun: {exc}")
        return
    _started(new_id)
    run_view.notify(NOTICE_KEY, "success", f"Started run {new_id}: a rerun of run {run_id}'s {what}.")


def _rerun_with_upstream(settings: Settings, run_id: str, who: str | None, key: str) -> None:
    """Button callback: a new run of the blocked dates, their upstream stage first."""
    try:
        new_id = rerun_with_upstream(settings, run_id, who, launch_key=key)
    except AlreadyLaunched as exc:
        new_id = exc.run_id
    except BackfillError as exc:
        run_view.notify(NOTICE_KEY, "error", f"Not rerun: {exc}")
        return
    _started(new_id)
    run_view.notify(
        NOTICE_KEY,
        "success",
        f"Started run {new_id}: run {run_id}'s blocked dates with their upstream first.",
    )


def _resume(settings: Settings, run_id: str, who: str | None) -> None:
    """Button callback: finish an interrupted run's unfinished items in a new worker process."""
    try:
        resume_detached(settings, run_id, who)
    except BackfillError as exc:
        run_view.notify(NOTICE_KEY, "error", f"Not resumed: {exc}")
        return
    run_view.watch(run_id)
    run_view.notify(NOTICE_KEY, "success", f"Resumed run {run_id}: only its unfinished items run again.")


def _open(run_id: str) -> None:
    st.session_state[SELECTED_KEY] = run_id


def _link_date() -> dt.date | None:
    """The ``?date=`` of a deep link: runs that touched it (a one-line warning when unusable)."""
    raw = st.query_params.get("date")
    if not raw:
        return None
    try:
        return parse_date(raw)
    except BadInput:
        st.warning(f"Ignored the link's date {raw[:40]!r}: expected YYYY-MM-DD.", icon=":material/link_off:")
        return None


def _link_run(ledger: Ledger) -> str | None:
    """The ``?run=`` of a deep link when it names a run (a one-line warning when it does not)."""
    raw = st.query_params.get("run")
    if not raw or raw == st.session_state.get("runs_linked"):
        return None
    try:
        return ledger.get_run(raw).run_id
    except BackfillError:
        st.warning(
            f"Ignored the link's run {raw[:40]!r}: no such run in the ledger.", icon=":material/link_off:"
        )
        st.session_state["runs_linked"] = raw
        return None


def _actions(
    settings: Settings, run: Run, items: list[dict], identity: auth.Identity, reruns: list[Run]
) -> None:
    """Rerun failed, rerun transient, resume and cancel: operators only, each where it applies.
    ``reruns``: this run's reruns still under way (a rerun is then done already: said, not repeated)."""
    unfinished = rerun_rules.unfinished(items)
    transient = rerun_rules.transient_failures(items)
    active = run.status in RUN_ACTIVE
    locked = not identity.may_act
    # Asked before drawing: a pipeline file changed in meaning since the run blocks its replays, named.
    changes = replay_changes(run.params)
    changed = replay_refusal(run.params, run.run_id)
    if not changed and reruns:
        changed = f"already rerun: run {reruns[0].run_id} is {reruns[0].status} (open it above)"
    key = st.session_state.setdefault(LAUNCH_KEY, uuid.uuid4().hex)

    def why(applies: bool, otherwise: str, does: str) -> str:
        if locked:
            return identity.reason
        if changed and applies:
            return changed[0].upper() + changed[1:] + "."
        return does if applies else otherwise

    with st.container(horizontal=True):
        st.button(
            f"Rerun failed dates ({len({item['game_date'] for item in unfinished})})",
            key="runs_rerun_failed",
            icon=":material/replay:",
            disabled=locked or bool(changed) or not rerun_rules.may_rerun(run, items),
            help=why(
                rerun_rules.may_rerun(run, items),
                "Nothing to rerun: every item is done or skipped (or the run is still going).",
                "A new run of the failed, blocked and cancelled dates, with the same settings.",
            ),
            on_click=_rerun,
            args=(settings, run.run_id, identity.who, False, key),
        )
        st.button(
            f"Rerun transient failures ({len({item['game_date'] for item in transient})})",
            key="runs_rerun_transient",
            icon=":material/restart_alt:",
            disabled=locked or bool(changed) or active or not transient,
            help=why(
                bool(transient) and not active,
                "No transient failures in this run.",
                "A new run of only the dates that failed with timeouts or other transient errors.",
            ),
            on_click=_rerun,
            args=(settings, run.run_id, identity.who, True, key),
        )
        st.button(
            "Resume",
            key="runs_resume",
            icon=":material/play_arrow:",
            disabled=locked or bool(changed) or not rerun_rules.may_resume(run),
            help=why(
                rerun_rules.may_resume(run),
                "Only an interrupted run (its process stopped) can be resumed.",
                "Finishes only the unfinished items, in a new background process.",
            ),
            on_click=_resume,
            args=(settings, run.run_id, identity.who),
        )
        run_view.cancel_button(settings, run, identity, key="runs_cancel", notice_key=NOTICE_KEY)
    if changes and (rerun_rules.may_rerun(run, items) or rerun_rules.may_resume(run)):
        st.caption(
            f"Not resumable or rerunnable as recorded, the pipeline file changed: {'; '.join(changes)}."
        )
    waiting = waiting_for(run, items, settings.pipeline)
    if waiting:
        upstream = ", ".join(STAGE_LABELS[name] for name in sorted(waiting) if name in STAGE_LABELS)
        blocked_days = {item["game_date"] for item in blocked_items(items)}
        st.button(
            f"Rerun with upstream: {upstream} first ({len(blocked_days)} date{'s' if len(blocked_days) != 1 else ''})",
            key="runs_rerun_upstream",
            icon=":material/account_tree:",
            type="primary",
            disabled=locked or bool(changed) or active,
            help=why(
                not active,
                "The run is still going.",
                f"Blocked dates wait for {upstream}: one new run backfills {upstream}, then the blocked stage.",
            ),
            on_click=_rerun_with_upstream,
            args=(settings, run.run_id, identity.who, key),
        )
        st.caption(
            f"Blocked dates wait for {upstream}: rerun alone, they meet the same gate. "
            f"Rerun with upstream redoes {upstream} first, in the same run."
        )


def _draw_run(ledger: Ledger, run: Run) -> None:
    run_view.status_line(run)
    items = run_view.progress(ledger, run, STAGE_LABELS)
    st.dataframe(
        runs.items_table(items, STAGE_LABELS),
        hide_index=True,
        key=f"runs_items_{run.run_id}",
        column_config={
            "Before %": st.column_config.NumberColumn(format="%.1f"),
            "After %": st.column_config.NumberColumn(format="%.1f"),
            "Seconds": st.column_config.NumberColumn(format="%.2f"),
            "Rows written": st.column_config.NumberColumn(format="localized"),
            "Error": st.column_config.TextColumn(width="large"),
        },
    )
    with st.expander("Log", expanded=run.status in RUN_ACTIVE):
        run_view.log(ledger, run, lines=200)


settings, _ = open_console()
LINKED_RUN = st.query_params.get("run")  # before the page writes its own choice there
STAGE_LABELS = stages.labels(settings)
identity = auth.current_identity(settings)
ledger = Ledger(settings.ledger)
ledger.detect_interrupted()
history = ledger.list_runs(HISTORY_LIMIT)

if not history:
    st.info("No runs recorded yet.", icon=":material/info:")
    st.page_link("pages/backfill.py", label="Launch one on the Backfill page", icon=":material/play_circle:")
    st.stop()

linked = _link_run(ledger)
link_day = _link_date()
st.session_state.setdefault("runs_date", None)
if link_day is not None and link_day != st.session_state.get("runs_date_linked"):
    st.session_state["runs_date"] = link_day
date_col, status_col, user_col = st.columns([1, 1, 1])
day = date_col.date_input(
    "Runs that touched a date",
    format="YYYY-MM-DD",
    key="runs_date",
    help="Only runs whose dates include this one; empty for every run.",
)
st.session_state["runs_date_linked"] = day
# Status and user filters, kept in the URL (?status=failed,blocked&user=...) like the date.
for name, options in (
    ("status", sorted({str(run.status) for run in history})),
    ("user", sorted({run.created_by for run in history})),
):
    if f"runs_{name}_filter" not in st.session_state:
        linked_values = [value for value in st.query_params.get(name, "").split(",") if value in options]
        st.session_state[f"runs_{name}_filter"] = linked_values
statuses = status_col.multiselect(
    "Status",
    sorted({str(run.status) for run in history}),
    key="runs_status_filter",
    placeholder="Every status",
)
users = user_col.multiselect(
    "Started by", sorted({run.created_by for run in history}), key="runs_user_filter", placeholder="Everyone"
)
for name, values in (("status", statuses), ("user", users)):
    if values:
        st.query_params[name] = ",".join(values)
    else:
        st.query_params.pop(name, None)
filtered = runs.filtered(history, statuses, users)
if day is None:
    st.query_params.pop("date", None)
    shown = filtered
else:
    st.query_params["date"] = day.isoformat()
    shown = [run for run in filtered if runs.touches(run, day)]
st.caption(
    f"{len(shown)} of {plural(len(history), 'run')}"
    + (f" touched {day}" if day is not None else "")
    + ", newest first. Click a row to open the run."
    if len(shown) != len(history)
    else f"{plural(len(shown), 'run')}, newest first. Click a row to open the run."
)


def _pick(shown_ids: list[str]) -> None:
    """Table callback: the clicked row's run is opened below."""
    rows = st.session_state["runs_history"].selection.rows
    if rows and rows[0] < len(shown_ids):
        st.session_state[SELECTED_KEY] = shown_ids[rows[0]]


st.dataframe(
    runs.styled_history(runs.history_table(shown, STAGE_LABELS, settings.pipeline)),
    hide_index=True,
    key="runs_history",
    on_select=partial(_pick, [run.run_id for run in shown]),
    selection_mode="single-row",
    column_config={"Outcome": st.column_config.TextColumn(width="medium")},
)

if linked is not None:
    st.session_state[SELECTED_KEY] = linked
by_id = {run.run_id: run for run in history}
choices = [run.run_id for run in shown]
selected = st.session_state.get(SELECTED_KEY)
if selected is not None and selected not in choices:
    if selected not in by_id:
        try:
            by_id[selected] = ledger.get_run(selected)
        except BackfillError:
            selected = None
    if selected is not None:
        choices.insert(0, selected)  # a linked or opened run outside the filter stays shown
if not choices:
    st.stop()
if selected is None:
    st.session_state[SELECTED_KEY] = choices[0]
run_id = st.selectbox("Run", choices, format_func=lambda rid: runs.run_label(by_id[rid]), key=SELECTED_KEY)
st.query_params["run"] = run_id
st.session_state["runs_linked"] = run_id

run = ledger.get_run(run_id)
st.subheader(f"Run {run.run_id}", anchor="selected-run")
if run.run_id == LINKED_RUN:
    scroll.scroll_once("selected-run", f"runs?run={run.run_id}")
st.caption(
    f"Started by {run.created_by} at {runs.when_text(run.created_at)} on {run.warehouse}; "
    f"{runs.params_text(run.params, STAGE_LABELS, settings.pipeline)}; {run.statements} warehouse statement{'s' if run.statements != 1 else ''}"
    + (f"; took {runs.took_text(run)}" if runs.took_text(run) else "")
    + "."
)
family = [(run.parent_run_id, "Rerun of")] if run.parent_run_id else []
family += [(child.run_id, "Rerun") for child in history if child.parent_run_id == run.run_id]
if family:
    with st.container(horizontal=True):
        for other_id, relation in family:
            st.button(
                f"{relation} {other_id}",
                key=f"runs_open_{other_id}",
                icon=":material/north_east:",
                on_click=_open,
                args=(other_id,),
            )
auth.explain(identity)
_actions(
    settings,
    run,
    ledger.items(run.run_id),
    identity,
    [child for child in history if child.parent_run_id == run.run_id and child.status in RUN_ACTIVE],
)
run_view.show_notice(NOTICE_KEY)
run_view.follow(ledger, run.run_id, lambda current: _draw_run(ledger, current), key="runs_live")
