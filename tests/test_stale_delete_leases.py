"""The stale-row deletion is a writer like any other: it takes leases on its (stage, date) items,
is refused while a run holds them (naming the run and who started it), refuses launches while it
holds them, and goes through the retry policy (SPEC 4.3, 4.4)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from backfill import launch, stale
from backfill.holds import DatesHeld
from backfill.ledger import Ledger
from backfill.request import BackfillRequest
from backfill.runner import create_run
from tests.faulty import FaultyWarehouse

DEC_1, DEC_7, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 7), dt.date(2021, 12, 31)
TODAY = lambda: dt.date(2026, 11, 27)  # noqa: E731


def test_a_stale_delete_is_refused_while_a_run_holds_its_dates_naming_the_run(demo, settings):
    ledger = Ledger(settings.ledger)
    request = BackfillRequest.build(settings, dates=[DEC_7], today=TODAY)
    holder = create_run(ledger, demo, request, "alice")
    ledger.start_run(holder)  # alive: this very process
    ledger.acquire_leases(holder, request.items())
    before = stale.stale_counts(demo, settings, DEC_1, DEC_31)

    with pytest.raises(DatesHeld) as refused:
        launch.delete_stale_rows(settings, DEC_1, DEC_31, "bob", warehouse=demo)
    assert f"held by run {holder} (running, started by alice)" in str(refused.value)
    assert "2021-12-07" in str(refused.value)
    # Nothing was deleted, and the run's leases are as they were.
    assert stale.stale_counts(demo, settings, DEC_1, DEC_31).equals(before)
    ledger.check_lease(holder, request.stages[0], [DEC_7])
    # Once the run is over, the same deletion goes through.
    ledger.finish_run(holder, "succeeded")
    deleted = launch.delete_stale_rows(settings, DEC_1, DEC_31, "bob", warehouse=demo)
    assert len(deleted) and stale.stale_counts(demo, settings, DEC_1, DEC_31).empty


def test_a_run_is_refused_while_a_stale_delete_holds_its_dates_naming_who(demo_copy, settings):
    warehouse = FaultyWarehouse(settings, Path(demo_copy))
    request = BackfillRequest.build(settings, dates=[DEC_7], today=TODAY)
    refusals: list[str] = []

    def launch_meanwhile(params):
        # The deletion is writing: a launch over the same dates must be refused, naming it.
        with pytest.raises(DatesHeld) as refused:
            launch.submit(settings, request, "carol", warehouse=warehouse)
        refusals.append(str(refused.value))

    warehouse.on_execute = launch_meanwhile
    launch.delete_stale_rows(settings, DEC_1, DEC_31, "alice", warehouse=warehouse)
    (message,) = refusals
    assert "held by run stale-delete-" in message and "started by alice" in message
    ledger = Ledger(settings.ledger)
    assert ledger.list_runs() == []  # the launch recorded nothing; the lease holder is no backfill
    (holder,) = ledger.list_runs(kind="stale_delete")
    assert (holder.status, holder.created_by) == ("succeeded", "alice")
    # Its leases are gone with it: a run over those dates may start now.
    warehouse.on_execute = None
    run_id = create_run(ledger, warehouse, request, "carol")
    ledger.start_run(run_id)
    ledger.acquire_leases(run_id, request.items())


def test_a_transient_failure_of_the_stale_delete_is_retried(demo_copy, settings):
    warehouse = FaultyWarehouse(settings, Path(demo_copy))
    failures = [TimeoutError("injected: job timed out")]

    def time_out_once(params):
        if failures:
            raise failures.pop()

    warehouse.on_execute = time_out_once
    deleted = launch.delete_stale_rows(settings, DEC_1, DEC_31, "alice", warehouse=warehouse)
    assert not failures and len(deleted)
    assert stale.stale_counts(warehouse, settings, DEC_1, DEC_31).empty
