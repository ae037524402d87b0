"""The History page and the Overview's last check, through AppTest, after the issue's sequence:
a clean check, a date's predictions deleted and checked, a backfill of the date, a check again."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backfill.alerts import AlertSecrets
from backfill.launch import run_here
from backfill.request import BackfillRequest
from backfill.watch import run_check

APP = Path(__file__).resolve().parents[1] / "app.py"
WEEK = (dt.date(2022, 1, 3), dt.date(2022, 1, 9))
DAY = dt.date(2022, 1, 5)


@pytest.fixture
def sequence(settings, demo):
    """Checks and a run recorded in the private ledger: (check ids oldest first, the run's id)."""
    no_alerts = AlertSecrets()
    first = run_check(settings, demo, *WEEK, who="cron", secrets=no_alerts)
    demo.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": DAY})
    second = run_check(settings, demo, *WEEK, who="cron", secrets=no_alerts)
    result = run_here(
        settings, BackfillRequest.build(settings, dates=[DAY], stages="predictions"), "op", warehouse=demo
    )
    third = run_check(settings, demo, *WEEK, who="cron", secrets=no_alerts)
    return [first.check_id, second.check_id, third.check_id], result.run_id


@pytest.fixture
def app(settings, tmp_path, monkeypatch) -> AppTest:
    for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("BACKFILL_CONFIG", os.devnull)
    monkeypatch.setenv("BACKFILL_WAREHOUSE", settings.warehouse)
    monkeypatch.setenv("BACKFILL_LEDGER", settings.ledger)
    return AppTest.from_file(str(APP), default_timeout=60)


def _frame(at: AppTest, column: str):
    """The one table with this column (AppTest does not expose a dataframe's key)."""
    (frame,) = [df.value for df in at.dataframe if column in df.value.columns]
    return frame


def test_history_page_shows_when_the_gap_appeared_and_which_run_fixed_it(sequence, app):
    (first, second, third), run_id = sequence
    app.run()
    at = app.switch_page("pages/history.py").run()
    assert not at.exception
    checks = _frame(at, "Check")
    assert list(checks["Check"]) == [third, second, first]  # newest first
    assert list(checks["Result"]) == ["ok", "problems", "ok"]
    assert list(checks["New"]) == [0, 1, 0] and list(checks["Recovered"]) == [1, 0, 0]

    (episode,) = _frame(at, "Seen first by").to_dict("records")
    assert (episode["Date"], episode["Stage"], episode["Worst status"]) == (DAY, "Predictions", "missing")
    assert episode["Seen first by"] == f"check {second}"
    assert episode["Fixed by"] == f"run {run_id}"

    at.selectbox(key="history_check").set_value(second).run()
    findings = _frame(at, "Stage or table")
    assert list(zip(findings["Change"], findings["Date"], findings["Stage or table"])) == [
        ("new", DAY, "Predictions")  # the stage's label, as every page writes it
    ]
    assert "None" not in findings.astype(str).to_numpy().tolist().__str__()  # a dash, never a raw None
    assert (findings["Was"] == "–").all()  # a new finding was nothing before
    at.segmented_control(key="history_by").set_value("stage").run()
    assert not at.exception
    (chart,) = [element for element in at.get("vega_lite_chart") if "taken_at" in element.proto.spec]
    spec = json.loads(chart.proto.spec)
    x, y = spec["encoding"]["x"], spec["encoding"]["y"]
    assert (
        x["title"] == "Snapshot time (UTC)" and x["scale"]["type"] == "utc" and "%H:%M" in x["axis"]["format"]
    )
    # The axis spans the data (a point either side), not a misleading 0 to 100: one missing date of
    # a week leaves every snapshot's coverage far above 50%.
    low, high = y["scale"]["domain"]
    assert 50.0 < low < high <= 100.0


@pytest.mark.parametrize(("day", "gaps"), [("2022-01-05", 1), ("2022-01-04", 0)])
def test_a_date_link_narrows_the_gaps_to_that_date(sequence, app, day, gaps):
    app.run()
    app.query_params["date"] = day
    at = app.switch_page("pages/history.py").run()
    assert not at.exception
    tables = [df.value for df in at.dataframe if "Seen first by" in df.value.columns]
    if gaps:
        (table,) = tables
        assert [str(value) for value in table["Date"]] == [day]
    else:
        assert not tables
        assert any("No gap seen" in caption.value for caption in at.caption)


def test_overview_shows_the_last_checks_time_and_result(sequence, app):
    at = app.run()
    assert not at.exception
    (link,) = [element for element in at.get("page_link") if "Last check" in element.proto.label]
    assert "2022-01-03 to 2022-01-09: ok (0 new, 0 open, 1 recovered)" in link.proto.label


def test_without_any_check_the_history_page_says_how_to_run_one(app, settings):
    app.run()
    at = app.switch_page("pages/history.py").run()
    assert not at.exception
    assert "python -m backfill check" in at.info[0].value
    assert not Path(settings.ledger).exists()  # reading created no ledger


def test_an_unreachable_ledger_is_one_line_on_the_overview_and_an_error_on_history(
    app, monkeypatch, tmp_path
):
    # Nothing listens on port 1 of the loopback: the connection is refused at once.
    monkeypatch.setenv("BACKFILL_LEDGER", "postgresql://nobody@127.0.0.1:1/ledger")
    monkeypatch.setenv("BACKFILL_CACHE_DIR", str(tmp_path / "cache"))  # not the repository's data/cache
    at = app.run()
    assert not at.exception
    (link,) = [element for element in at.get("page_link") if "Last check" in element.proto.label]
    assert link.proto.label.startswith("Last check unknown: the check history cannot be read")
    at = app.switch_page("pages/history.py").run()
    assert not at.exception
    assert "the check history cannot be read" in at.error[0].value
