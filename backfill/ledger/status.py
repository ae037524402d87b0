"""Run and item statuses, and the transitions between them that the ledger allows."""

from __future__ import annotations

import enum

from backfill.errors import BackfillError


class RunStatus(enum.StrEnum):
    """Where a run is: queued for a worker, running, or ended (interrupted runs can be resumed)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    BLOCKED = "blocked"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"
    REFUSED = "refused"


class ItemStatus(enum.StrEnum):
    """Where one (stage, date) of a run is."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"


class IllegalTransition(BackfillError):
    """A status change the ledger does not allow (for example a finished run becoming running)."""


RUN_ACTIVE = (RunStatus.QUEUED, RunStatus.RUNNING)
ITEM_OPEN = (ItemStatus.PENDING, ItemStatus.RUNNING)
"""Item statuses of unfinished work: a resume does these and nothing else."""
ITEM_FINAL = (
    ItemStatus.DONE,
    ItemStatus.SKIPPED,
    ItemStatus.FAILED,
    ItemStatus.BLOCKED,
    ItemStatus.CANCELLED,
)

_RUN_ENDINGS = {
    RunStatus.SUCCEEDED,
    RunStatus.BLOCKED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.REFUSED,
}

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    # A queued run ends without running when its worker never starts, is refused or is cancelled.
    RunStatus.QUEUED: frozenset(
        {RunStatus.RUNNING, RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.REFUSED}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.INTERRUPTED} | _RUN_ENDINGS),
    # The only way back: resume in this process (running) or in a new worker (queued); or give it up.
    RunStatus.INTERRUPTED: frozenset({RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.CANCELLED}),
    **{ending: frozenset() for ending in _RUN_ENDINGS},
}
"""Run status -> the statuses it may change to."""

ITEM_TRANSITIONS: dict[ItemStatus, frozenset[ItemStatus]] = {
    ItemStatus.PENDING: frozenset(ItemStatus) - {ItemStatus.PENDING},
    # Running again: a resumed run redoes the items its crashed process had started.
    ItemStatus.RUNNING: frozenset(ItemStatus) - {ItemStatus.PENDING},
    **{final: frozenset() for final in ITEM_FINAL},
}
"""Item status -> the statuses it may change to (a finished item is only redone by a new run)."""


def run_sources(target: RunStatus) -> tuple[str, ...]:
    """The run statuses (as text, to bind in SQL) from which ``target`` may be reached."""
    return tuple(source.value for source, targets in RUN_TRANSITIONS.items() if target in targets)


def item_sources(target: ItemStatus) -> tuple[str, ...]:
    """The item statuses (as text, to bind in SQL) from which ``target`` may be reached."""
    return tuple(source.value for source, targets in ITEM_TRANSITIONS.items() if target in targets)


def run_status(value: str) -> RunStatus:
    """A run status from text; an unknown one is an IllegalTransition, not a ValueError."""
    try:
        return RunStatus(value)
    except ValueError:
        raise IllegalTransition(f"{value!r} is not a run status ({', '.join(RunStatus)})") from None


def item_status(value: str) -> ItemStatus:
    """An item status from text; an unknown one is an IllegalTransition, not a ValueError."""
    try:
        return ItemStatus(value)
    except ValueError:
        raise IllegalTransition(f"{value!r} is not an item status ({', '.join(ItemStatus)})") from None
