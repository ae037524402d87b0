"""Who may act, proven in a real browser (SPEC 4.9; issue 15): sign-in through a real OpenID
Connect provider (oidc-provider-mock on a loopback port), then what operators and viewers can do.

The console under test lists one operator by e-mail (``OPERATOR["email"]``); the provider signs in
the operator by their subject, and anyone else by a typed subject. Expected names come from the
provider's user records here, not from the console.
"""

from __future__ import annotations

import contextlib
import re

from backfill.ledger import Ledger
from tests.browser.conftest import OPERATOR, VIEWER_EMAIL


def _settle_on(journey, marker: str) -> None:
    journey.page.get_by_text(marker).first.wait_for()
    journey.settle()


def _sidebar(journey, expect: str = "Who") -> str:
    """The sidebar's text once its contents are drawn (after the page's, issue 23): once ``expect``
    is there, or the wait's deadline passed (then the caller's check says what is missing)."""
    sidebar = journey.page.locator('[data-testid="stSidebar"]')
    with contextlib.suppress(Exception):
        sidebar.get_by_text(expect).first.wait_for(timeout=20000)
    return sidebar.inner_text()


def _go(journey, url: str, path: str, marker: str) -> None:
    journey.page.goto(f"{url}{path}")
    _settle_on(journey, marker)


def _sign_in(journey, url: str, *, operator: bool) -> str:
    """Log in from the sidebar and choose the user on the provider's page; returns the e-mail."""
    _go(journey, url, "/", "Monthly coverage")
    journey.check(
        "Not signed in: viewing only." in _sidebar(journey, "Not signed in"), "before sign-in: viewing only"
    )
    journey.page.get_by_role("button", name="Log in").click()
    journey.page.get_by_role("heading", name="Authorize Client").wait_for()
    journey.shot("the provider's authorization page")
    if operator:
        journey.page.get_by_role("button", name=OPERATOR["sub"], exact=True).click()
        email = OPERATOR["email"]
    else:
        journey.page.get_by_placeholder("sub").fill(VIEWER_EMAIL)
        journey.page.get_by_role("button", name="Authorize", exact=True).click()
        email = VIEWER_EMAIL
    journey.page.wait_for_url(f"{url}/**")
    _settle_on(journey, f"Signed in as {email}")
    return email


def _alert_with(journey, text: str) -> str:
    """The text of the (first) alert that contains ``text``, or "" if there is none."""
    alerts = journey.page.locator('[data-testid="stAlert"] [data-testid="stMarkdownContainer"]')
    alerts = alerts.filter(has_text=text)
    return alerts.first.inner_text().strip() if alerts.count() else ""


def _posted(frames: list[str | bytes], widget_key: str) -> bool:
    """Whether a message the page sent to the server names the widget ``widget_key``."""
    return any(widget_key.encode() in (f if isinstance(f, bytes) else f.encode()) for f in frames)


def _wait_for_status(journey, statuses: tuple[str, ...], timeout_s: float = 90) -> str:
    """Wait until the followed run's status badge shows one of ``statuses``."""
    locator = journey.page.locator('[data-testid="stMarkdownContainer"]')
    for _ in range(int(timeout_s * 2)):
        text = " ".join(locator.all_inner_texts())
        for status in statuses:
            if status in text:
                return status
        journey.page.wait_for_timeout(500)
    return ""


def test_an_operator_signs_in_launches_a_backfill_and_the_run_names_them(
    signed_out_journey, signed_in_console
):
    url, settings, _ = signed_in_console
    journey = signed_out_journey
    email = _sign_in(journey, url, operator=True)
    journey.check(
        f"Signed in as {email} (operator)." in _sidebar(journey, "Signed in as"), "signed in as the operator"
    )
    runs_before = {run.run_id for run in Ledger(settings.ledger).list_runs()}

    _go(journey, url, "/backfill", "Preview and launch")
    journey.page.get_by_text("Typed dates", exact=True).click()
    journey.settle()
    typed = journey.page.get_by_role("textbox", name="Dates", exact=True)
    typed.fill("2021-12-07")
    typed.press("Enter")
    journey.settle()
    stages = journey.page.locator('[data-testid="stButtonGroup"]').filter(has_text="Predictions")
    stages.get_by_text("MLFS", exact=True).click()
    journey.settle()
    launch = journey.page.get_by_role("button", name="Launch backfill")
    journey.check(launch.is_enabled(), "launch enabled for the operator")
    launch.click()
    journey.settle()
    status = _wait_for_status(journey, ("succeeded", "failed", "blocked", "interrupted"))
    journey.check(status == "succeeded", "the operator's run succeeds", f"run ended as {status or 'nothing'}")

    new_runs = [run for run in Ledger(settings.ledger).list_runs() if run.run_id not in runs_before]
    journey.check(len(new_runs) == 1, "one new run in the ledger", f"{len(new_runs)} new runs")
    (run,) = new_runs
    journey.check(run.created_by == OPERATOR["email"], "the ledger names the operator", run.created_by)
    _go(journey, url, f"/runs?run={run.run_id}", f"Run {run.run_id}")
    journey.check(
        journey.page.get_by_text(f"Started by {OPERATOR['email']} at").count() == 1,
        "the run's page names the operator",
    )


def test_a_viewer_sees_every_figure_and_every_action_is_disabled_with_a_reason(
    signed_out_journey, signed_in_console
):
    url, _, blocked_run_id = signed_in_console
    journey = signed_out_journey
    email = _sign_in(journey, url, operator=False)
    journey.check(
        f"Signed in as {email} (viewer)." in _sidebar(journey, "Signed in as"), "signed in as a viewer"
    )
    reason = f"{email} is not an operator, so launching, rerunning and cancelling are disabled"

    cells = journey.grid_text("2021-12")
    journey.check("2021-12" in cells, "overview: the monthly table", str(cells[:12]))

    # 2021-12-09: its predictions stay blocked whatever the operator's journey backfilled.
    _go(journey, url, "/coverage?date=2021-12-09", "By month")
    charts = journey.page.locator(
        '[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg'
    )
    charts.first.wait_for()
    journey.check(charts.count() >= 2, "coverage: heatmaps drawn", f"{charts.count()} charts")
    blocked = [cell for cell in journey.grid_text("blocked upstream") if "blocked upstream" in cell]
    journey.check(len(blocked) > 0, "coverage: the drill-down lists missing players and why")

    _go(journey, url, "/gaps", "Delete stale rows")
    gaps = journey.grid_text("2021-12-09")
    journey.check("2021-12-09" in gaps, "gaps: the gap table", str(gaps[:12]))
    note = _alert_with(journey, "Only operators may delete stale rows.")
    journey.check(note != "" and "\n" not in note, "gaps: one-line reason", repr(note))
    journey.check(
        journey.page.get_by_role("button", name="Review deletion").is_disabled(), "gaps: deletion disabled"
    )

    _go(journey, url, "/backfill", "Preview and launch")
    note = _alert_with(journey, reason)
    journey.check(note != "" and "\n" not in note, "backfill: one-line reason", repr(note))
    journey.check(
        journey.page.get_by_role("button", name="Launch backfill").is_disabled(), "backfill: launch disabled"
    )
    journey.check(
        journey.page.get_by_role("checkbox", name="Skip the MLFS gate (operators only)").is_disabled(),
        "backfill: skipping the gate disabled",
    )
    journey.check(
        journey.page.get_by_role("button", name="Dry run").is_enabled(), "backfill: the dry run stays open"
    )

    _go(journey, url, f"/runs?run={blocked_run_id}", f"Run {blocked_run_id}")
    note = _alert_with(journey, reason)
    journey.check(note != "" and "\n" not in note, "runs: one-line reason", repr(note))
    for name in ("Rerun failed dates", "Rerun transient failures", "Resume", "Cancel"):
        button = journey.page.get_by_role("button", name=re.compile(f"^{name}"))
        journey.check(
            button.count() == 1 and button.is_disabled(),
            f"runs: {name.lower()} disabled",
            f"{button.count()}",
        )


def test_a_viewers_forged_rerun_is_refused_and_nothing_is_written(signed_out_journey, signed_in_console):
    url, settings, blocked_run_id = signed_in_console
    journey = signed_out_journey
    sent: list[str | bytes] = []
    journey.page.on("websocket", lambda socket: socket.on("framesent", lambda frame: sent.append(frame)))
    _sign_in(journey, url, operator=False)
    _go(journey, url, f"/runs?run={blocked_run_id}", f"Run {blocked_run_id}")
    rerun = journey.page.get_by_role("button", name=re.compile("^Rerun failed dates"))
    journey.check(rerun.is_disabled(), "the rerun button is disabled for the viewer")
    runs_before = [run.run_id for run in Ledger(settings.ledger).list_runs()]

    # Re-enable the button in the DOM and post its click. The button's click handler checks its
    # own `disabled` flag too, so post the trigger through the page's widget manager, as a crafted
    # page would: the message the server gets is the one an enabled button sends.
    sent.clear()
    rerun.evaluate(
        """button => {
            button.disabled = false;
            let fiber = button[Object.keys(button).find(key => key.startsWith("__reactFiber"))];
            while (fiber && !(fiber.memoizedProps && fiber.memoizedProps.widgetMgr && fiber.memoizedProps.element)) {
                fiber = fiber.return;
            }
            const {widgetMgr, element, fragmentId} = fiber.memoizedProps;
            widgetMgr.setTriggerValue(element.id, {formId: element.formId, fragmentId, fromUser: true});
        }"""
    )
    for _ in range(40):  # the forged trigger leaves the page within a few frames
        if _posted(sent, "runs_rerun_failed"):
            break
        journey.page.wait_for_timeout(250)
    journey.check(
        _posted(sent, "runs_rerun_failed"),
        "the forged rerun was posted to the server",
        f"{len(sent)} frames sent, none for the rerun button",
    )
    journey.settle()
    # Streamlit 1.67 drops a disabled widget's trigger on the server before any callback; were one
    # to get through, the backend refuses the viewer and the page says so in one line.
    journey.check(journey.page.get_by_text("Started run").count() == 0, "no run started on the page")
    refusal = _alert_with(journey, "Not rerun")
    journey.check(
        refusal
        in (
            "",
            f"Not rerun: {VIEWER_EMAIL} may not rerun backfills: only operators may ({OPERATOR['email']})",
        ),
        "refused, if at all, by the backend's one-line reason",
        refusal,
    )
    runs_after = [run.run_id for run in Ledger(settings.ledger).list_runs()]
    journey.check(runs_after == runs_before, "the ledger has no new run", f"{runs_before} -> {runs_after}")


def test_signing_out_returns_to_viewing(signed_out_journey, signed_in_console):
    url, _, _ = signed_in_console
    journey = signed_out_journey
    _sign_in(journey, url, operator=True)
    journey.page.get_by_role("button", name="Log out").click()
    end_session = journey.page.get_by_role("button", name="End session")
    end_session.wait_for()
    journey.shot("the provider ends the session")
    end_session.click()
    journey.page.wait_for_url(f"{url}/**")
    _settle_on(journey, "Not signed in: viewing only.")
    journey.check(
        journey.page.get_by_role("button", name="Log in").count() == 1,
        "signed out: the log-in button is back",
    )
    cells = journey.grid_text("2021-12")
    journey.check("2021-12" in cells, "signed out: the figures are still shown")
    _go(journey, url, "/backfill", "Preview and launch")
    journey.check(
        journey.page.get_by_role("button", name="Launch backfill").is_disabled(),
        "signed out: launch disabled",
    )
