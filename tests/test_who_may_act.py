"""Who may act (SPEC 4.9, issue 10 item 4): sign-in without an operator list lets nobody act, the
operator is named by a configured claim, and the backend refuses whoever the page would not enable.

The console tests inject the sign-in state at Streamlit's own boundary (``AppTest.user``); the
real sign-in through an OpenID Connect provider is proven in tests/browser/test_sign_in.py.
"""

from __future__ import annotations

import datetime as dt
import os

import pytest
from streamlit.testing.v1 import AppTest

from backfill.access import NotAllowed, require_operator, signed_in_name
from backfill.config import Settings, load_settings
from backfill.errors import BadInput
from backfill.launch import submit
from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from tests.console_app import LOCAL_USER, console_app, texts
from ui import auth

BACKFILL_PAGE = "pages/backfill.py"
OPERATOR_EMAIL, OPERATOR_SUBJECT = "ada@example.com", "ada-0001"
VIEWER = "viewer@example.com"
DEC_7 = dt.date(2021, 12, 7)


@pytest.fixture
def app(settings, tmp_path, monkeypatch) -> AppTest:
    return console_app(settings, tmp_path, monkeypatch)


@pytest.mark.parametrize(
    "user",
    [{"is_logged_in": False}, {"is_logged_in": True, "email": VIEWER}],
    ids=["not-signed-in", "signed-in"],
)
def test_sign_in_without_an_operator_list_lets_nobody_act_even_by_a_forged_click(app, settings, user):
    # The defect: with [auth] and no operators, a visitor who was not signed in acted as the
    # server's OS user (LOCAL_USER here). AppTest's user with is_logged_in is [auth] configured.
    app.user = user
    sidebar = texts(app.run().sidebar.caption)
    assert "Viewing only: no operators are listed (set BACKFILL_OPERATORS)." in sidebar
    assert LOCAL_USER not in sidebar
    at = app.switch_page(BACKFILL_PAGE).run()
    launch = at.button(key="backfill_launch")
    assert launch.disabled
    assert "no operators are listed, so nobody may act" in texts(at.info)
    assert "BACKFILL_OPERATORS" in texts(at.info)

    # A forged click (the button re-enabled in the DOM) is dropped by Streamlit, which enforces
    # `disabled` on the server; and the name the page would pass, None, is refused by the backend.
    launch.proto.disabled = False
    launch.click().run()
    assert not at.success
    who = auth.identify(user, settings).who
    assert who is None
    request = BackfillRequest.build(settings, dates=[DEC_7])
    with pytest.raises(NotAllowed, match="an anonymous user may not launch backfills: no operators"):
        submit(settings, request, who)
    assert Ledger(settings.ledger).list_runs() == []


def test_without_sign_in_or_operators_the_local_user_still_acts(app):
    # Single-user local mode is unchanged: no [auth] (AppTest's default user), no operator list.
    assert f"you act as {LOCAL_USER}" in texts(app.run().sidebar.caption)
    at = app.switch_page(BACKFILL_PAGE).run()
    assert not at.button(key="backfill_launch").disabled
    assert not [info for info in at.info if "operator" in info.value]


@pytest.mark.parametrize(
    ("claim", "operators", "who", "may_act"),
    [
        ("email", (OPERATOR_EMAIL,), OPERATOR_EMAIL, True),
        ("email", (OPERATOR_SUBJECT,), OPERATOR_EMAIL, False),
        ("sub", (OPERATOR_SUBJECT,), OPERATOR_SUBJECT, True),
        ("sub", (OPERATOR_EMAIL,), OPERATOR_SUBJECT, False),
    ],
)
def test_the_operator_claim_setting_picks_what_names_the_operator(claim, operators, who, may_act):
    user = {"is_logged_in": True, "sub": OPERATOR_SUBJECT, "email": OPERATOR_EMAIL}
    identity = auth.identify(user, Settings(operators=operators, operator_claim=claim))
    assert (identity.who, identity.may_act) == (who, may_act)


def test_an_unverified_email_does_not_name_an_operator():
    user = {"is_logged_in": True, "sub": "x-1", "email": OPERATOR_EMAIL, "email_verified": False}
    identity = auth.identify(user, Settings(operators=(OPERATOR_EMAIL,)))
    assert (identity.who, identity.may_act) == (None, False)
    assert identity.reason == (
        "The sign-in provider gave no verified email for you, so launching, rerunning and cancelling are disabled."
    )
    assert signed_in_name(Settings(), {**user, "email_verified": True}) == OPERATOR_EMAIL


def test_operator_claim_defaults_to_email_and_refuses_other_claims_in_one_line(tmp_path):
    no_file = os.devnull  # no settings file
    assert load_settings({}, no_file).operator_claim == "email"
    assert load_settings({"BACKFILL_OPERATOR_CLAIM": "sub"}, no_file).operator_claim == "sub"
    with pytest.raises(BadInput) as refusal:
        load_settings({"BACKFILL_OPERATOR_CLAIM": "name"}, no_file)
    assert str(refusal.value) == "operator_claim must be one of email, sub, not 'name'"


def test_the_backend_refuses_an_unnamed_caller_even_in_single_user_mode():
    with pytest.raises(NotAllowed, match="an anonymous user may not launch backfills: no operators"):
        require_operator(Settings(), None, "launch backfills")
    require_operator(Settings(), LOCAL_USER, "launch backfills")  # a named local user still acts
