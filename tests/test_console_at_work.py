"""The console at work (issue 12), through AppTest and the backend: a busy warehouse is waited out
(never a traceback)."""

from __future__ import annotations

import duckdb
import pytest

from backfill.outage import outage_of
from tests.console_app import console_app, texts
from tests.lock_holder import warehouse_held


def _status_labels(at) -> str:
    """Labels of the running status boxes (the waiting state shows one, with a spinner)."""
    return " | ".join(status.label for status in at.status if status.state == "running")


def test_a_page_opened_while_another_process_holds_the_warehouse_waits_instead_of_a_traceback(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    with warehouse_held(settings.warehouse):
        at.run()
        assert not at.exception
        assert "Waiting for the warehouse" in _status_labels(at)
        assert not at.get("metric"), "no figures before the warehouse was ever read"
    at.run()
    assert not at.exception
    assert "Waiting for the warehouse" not in _status_labels(at)
    assert [metric.label for metric in at.metric][:1] == ["Seasons"]


def test_figures_read_once_stay_on_screen_with_their_time_while_the_warehouse_is_held(
    settings, tmp_path, monkeypatch
):
    at = console_app(settings, tmp_path, monkeypatch)
    monkeypatch.setenv("BACKFILL_CACHE_TTL_S", "0")  # every rerun reads the warehouse (none reused)
    at.run()
    figures = [metric.value for metric in at.metric]
    with warehouse_held(settings.warehouse):
        at.run()
        assert not at.exception
        assert "Waiting for the warehouse" in _status_labels(at)
        assert [metric.value for metric in at.metric] == figures
        assert "Showing data as of" in texts(at.caption)


def test_a_lock_conflict_is_an_outage_to_wait_out_and_a_program_bug_is_not_an_outage(settings):
    with warehouse_held(settings.warehouse), pytest.raises(duckdb.IOException) as held:
        duckdb.connect(settings.warehouse)
    assert outage_of(held.value).waiting
    assert outage_of(KeyError("stage")) is None
    with pytest.raises(duckdb.CatalogException) as missing:
        duckdb.connect(":memory:").execute("SELECT * FROM no_such_table")
    permanent = outage_of(missing.value)
    assert not permanent.waiting and "\n" not in permanent.text
