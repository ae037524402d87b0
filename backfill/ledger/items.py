"""Work items of a run: one guarded UPDATE changes some of them, all or none; many items with
fields of their own change in one checked transaction (:func:`guarded_updates`)."""

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


def guarded_updates(
    connection: sa.Connection, run_id: str, stage: str, values_by_day: dict[str, dict[str, Any]]
) -> None:
    """Set each day's own ``values`` on its item: one read checks every item exists and may change
    to its status, then one UPDATE per set of fields runs over all their days (an executemany).
    Raises before any write when one item may not change; the caller's write transaction holds the
    items meanwhile (SQLite: the database's write lock; PostgreSQL: the rows, read FOR UPDATE)."""
    if not values_by_day:
        return
    for values in values_by_day.values():
        unknown = set(values) - SETTABLE
        if unknown:
            raise BackfillError(f"items have no settable field {', '.join(sorted(unknown))}")
    keys = [items.c.run_id == run_id, items.c.stage == stage, items.c.game_date.in_(sorted(values_by_day))]
    found = dict(
        connection.execute(sa.select(items.c.game_date, items.c.status).where(*keys).with_for_update()).all()
    )
    missing = sorted(set(values_by_day) - set(found))
    if missing:
        raise BackfillError(f"run {run_id} has no {stage} item for {', '.join(missing[:3])}")
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    stuck = []
    for day, values in sorted(values_by_day.items()):
        if "status" in values:
            target = item_status(values["status"])
            if found[day] not in item_sources(target):
                stuck.append(f"{day} is {found[day]}; cannot become {target}")
            values = values | {"status": target.value}
        groups.setdefault(tuple(sorted(values)), []).append(
            {f"v_{name}": value for name, value in values.items()} | {"k_day": day}
        )
    if stuck:
        raise IllegalTransition(f"run {run_id} {stage}: {'; '.join(stuck[:3])}")
    for fields, rows in groups.items():
        statement = (
            items.update()
            .where(
                items.c.run_id == run_id,
                items.c.stage == stage,
                items.c.game_date == sa.bindparam("k_day"),
            )
            .values({name: sa.bindparam(f"v_{name}") for name in fields})
        )
        connection.execute(statement, rows)
