"""Work items of a run: one guarded UPDATE changes some of them, all or none."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from backfill.errors import BackfillError
from backfill.ledger.status import IllegalTransition, item_sources, item_status
from backfill.ledger.tables import items

SETTABLE = frozenset(items.c.keys()) - {"run_id", "stage", "game_date"}
"""Fields of an item a run may set (its key is not one of them)."""


def guarded_update(
    connection: sa.Connection, run_id: str, stage: str, days: list[str], values: dict[str, Any]
) -> None:
    """Set ``values`` on the items of ``days``; raises (and the caller's transaction rolls back) when
    one is missing or may not change to ``values['status']``."""
    unknown = set(values) - SETTABLE
    if unknown:
        raise BackfillError(f"items have no settable field {', '.join(sorted(unknown))}")
    keys = [items.c.run_id == run_id, items.c.stage == stage, items.c.game_date.in_(days)]
    guard = []
    if "status" in values:
        target = item_status(values["status"])
        values = values | {"status": target.value}
        guard = [items.c.status.in_(item_sources(target))]
    if connection.execute(items.update().where(*keys, *guard).values(**values)).rowcount == len(days):
        return
    found = dict(connection.execute(sa.select(items.c.game_date, items.c.status).where(*keys)).all())
    missing = sorted(set(days) - set(found))
    if missing:
        raise BackfillError(f"run {run_id} has no {stage} item for {', '.join(missing[:3])}")
    stuck = [
        f"{day} is {status}" for day, status in sorted(found.items()) if status not in item_sources(target)
    ]
    raise IllegalTransition(f"run {run_id} {stage}: {'; '.join(stuck[:3])}; cannot become {target}")
