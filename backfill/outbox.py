"""The alert outbox: an alert counts as told only once a channel accepted it (issue 21).

A check writes its alerts, one row per configured channel, in the same transaction as its findings,
each with a delivery id (receivers deduplicate by it: a delivery whose answer was lost is sent
again with the same id). Then, and in every later check of the warehouse, every pending row is
delivered under the retry policy; a row becomes ``sent`` when the receiver accepts it, and stays
``pending`` otherwise, so a check killed or hung during delivery, or a receiver down for a while,
delays an alert ("Resolved" included) but never loses it. A row is abandoned after
:data:`MAX_ATTEMPTS_IN_ALL` attempts over all checks, which says so.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

import sqlalchemy as sa

from backfill import alerts as alerting
from backfill.ledger.tables import alert_outbox
from backfill.writes import note_write

MAX_ATTEMPTS_IN_ALL = 50
"""Attempts at one alert over all checks before it is abandoned (a receiver gone for good)."""


def new_delivery_id() -> str:
    return f"dlv-{uuid.uuid4().hex}"


def rows_for(
    alert: alerting.Alert, warehouse: str, targets: Iterable[alerting.Channel], now: dt.datetime
) -> list[dict[str, Any]]:
    """The outbox rows of an alert, one per channel (written with the check that made it)."""
    text = json.dumps(
        {
            "check_id": alert.check_id,
            "subject": alert.subject,
            "text": alert.text,
            "new": list(alert.new),
            "resolved": list(alert.resolved),
        },
        default=str,
    )
    return [
        {
            "delivery_id": new_delivery_id(),
            "check_id": alert.check_id,
            "warehouse": warehouse,
            "channel": channel.name,
            "created_at": now,
            "status": "pending",
            "attempts": 0,
            "alert": text,
        }
        for channel in targets
    ]


def _alert(row: dict[str, Any]) -> alerting.Alert:
    data = json.loads(row["alert"])
    return alerting.Alert(
        check_id=data["check_id"],
        subject=data["subject"],
        text=data["text"],
        new=tuple(data["new"]),
        resolved=tuple(data["resolved"]),
        delivery_id=row["delivery_id"],
    )


def deliver_pending(
    engine: sa.Engine,
    warehouse: str,
    targets: list[alerting.Channel],
    policy,
    secrets: alerting.AlertSecrets,
    now: Callable[[], dt.datetime],
    record: Callable[[dict[str, Any]], None],
) -> list[alerting.Delivery]:
    """Deliver every pending alert of the warehouse on its channel (oldest first); returns how each
    went. ``record`` keeps each outcome in the alerts history as well."""
    with engine.connect() as connection:
        pending = (
            connection.execute(
                sa.select(alert_outbox)
                .where(alert_outbox.c.warehouse == warehouse, alert_outbox.c.status == "pending")
                .order_by(alert_outbox.c.created_at, alert_outbox.c.delivery_id)
            )
            .mappings()
            .all()
        )
    by_name = {channel.name: channel for channel in targets}
    deliveries = []
    for row in pending:
        channel = by_name.get(row["channel"])
        if channel is None:
            continue  # that channel is not configured now: the alert waits for it
        alert = _alert(dict(row))
        (delivery,) = alerting.deliver(alert, [channel], policy, secrets)
        attempts = row["attempts"] + delivery.attempts
        status = "sent" if delivery.status == "sent" else "pending"
        if status == "pending" and attempts >= MAX_ATTEMPTS_IN_ALL:
            status = "abandoned"
        with engine.begin() as connection:
            connection.execute(
                alert_outbox.update()
                .where(alert_outbox.c.delivery_id == row["delivery_id"])
                .values(
                    status=status,
                    attempts=attempts,
                    last_error=delivery.error,
                    sent_at=now() if status == "sent" else None,
                )
            )
        note_write()
        record(
            {
                "check_id": alert.check_id,
                "channel": delivery.channel,
                "target": delivery.target,
                "sent_at": now(),
                "status": delivery.status,
                "attempts": delivery.attempts,
                "error": delivery.error,
                "new_problems": len(alert.new),
                "resolved": len(alert.resolved),
                "message": alert.text,
            }
        )
        deliveries.append(delivery)
    return deliveries
