"""Which of a request's (stage, date) pairs another live run holds or will hold, and by whom.

A run takes its leases when its worker starts, so a queued run holds none yet; its items (recorded
when it was created) say what it will take. Looking at both before a launch lets the CLI and the
console refuse an overlapping run with the holder's name instead of starting a run that the leases
would refuse a moment later.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from backfill.errors import BackfillError
from backfill.ledger import Ledger, new_run_id
from backfill.ledger.status import RunStatus


@dataclass(frozen=True, order=True)
class Hold:
    """One (stage, date) another run holds."""

    stage: str
    game_date: dt.date
    run_id: str
    who: str
    status: RunStatus


class DatesHeld(BackfillError):
    """A launch would overlap a live run on the same warehouse; nothing was started."""

    def __init__(self, holds: list[Hold], labels: dict[str, str] | None = None):
        self.holds = holds
        super().__init__(held_text(holds, labels))


def held_text(holds: list[Hold], labels: dict[str, str] | None = None) -> str:
    """One line: which dates are held, by which run and whom (first few dates named)."""
    labels = labels or {}
    by_run: dict[tuple[str, str, str], list[Hold]] = {}
    for hold in sorted(holds):
        by_run.setdefault((hold.run_id, hold.who, str(hold.status)), []).append(hold)
    parts = []
    for (run_id, who, status), held in by_run.items():
        days = sorted({hold.game_date for hold in held})
        stages = sorted({labels.get(hold.stage, hold.stage) for hold in held})
        named = ", ".join(day.isoformat() for day in days[:3]) + (
            f" and {len(days) - 3} more" if len(days) > 3 else ""
        )
        parts.append(
            f"{len(days)} date{'s' if len(days) != 1 else ''} ({named}; {', '.join(stages)}) "
            f"held by run {run_id} ({status}, started by {who})"
        )
    return "; ".join(parts) + ": wait for it to end, or leave those dates out"


def held_dates(ledger: Ledger, warehouse_url: str, pairs: Iterable[tuple[str, dt.date]]) -> list[Hold]:
    """The pairs live runs on this warehouse hold or will hold (queued or running, process alive)."""
    wanted = {(stage, day.isoformat()) for stage, day in pairs}
    if not wanted:
        return []
    holds = []
    for run in ledger.active_runs_on(warehouse_url):
        for item in ledger.items(run.run_id):
            if (item["stage"], item["game_date"]) in wanted:
                holds.append(
                    Hold(
                        item["stage"],
                        dt.date.fromisoformat(item["game_date"]),
                        run.run_id,
                        run.created_by,
                        run.status,
                    )
                )
    return sorted(holds)


def refuse_overlap(
    ledger: Ledger,
    warehouse_url: str,
    pairs: Iterable[tuple[str, dt.date]],
    labels: dict[str, str] | None = None,
) -> None:
    """Raise :class:`DatesHeld` when a live run holds any of the pairs."""
    holds = held_dates(ledger, warehouse_url, pairs)
    if holds:
        raise DatesHeld(holds, labels)


WRITER_KIND_STALE_DELETE = "stale_delete"
"""The ledger kind of the short-lived run a stale-row deletion holds its leases under."""


@contextlib.contextmanager
def leased(
    ledger: Ledger,
    warehouse_url: str,
    pairs: Iterable[tuple[str, dt.date]],
    who: str,
    kind: str = WRITER_KIND_STALE_DELETE,
    labels: dict[str, str] | None = None,
) -> Iterator[str]:
    """Hold the (stage, date) pairs for a writer that is not a backfill (a stale-row deletion), as a
    run of its own ``kind`` in the ledger: refused with the holder's run and name while a live run
    holds or will hold any of them (:class:`DatesHeld`, as launches are), and while it holds them,
    launches over the same dates are refused naming it. Yields its run id; ends it on the way out."""
    wanted = sorted(set(pairs))
    refuse_overlap(ledger, warehouse_url, wanted, labels)
    run_id = ledger.create_run(
        params={"action": kind},
        items=wanted,
        created_by=who,
        warehouse=warehouse_url,
        kind=kind,
        run_id=f"{kind.replace('_', '-')}-{new_run_id()}",
    )
    ledger.start_run(run_id)
    outcome, message = "failed", None
    try:
        ledger.acquire_leases(run_id, wanted)  # a run launched meanwhile: LeaseConflict names it
        yield run_id
        outcome = "succeeded"
    except BaseException as exc:
        message = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        ledger.finish_run(run_id, outcome, message)
