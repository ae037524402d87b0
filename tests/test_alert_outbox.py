"""Alerts delivered exactly once, or retried until they are (issue 21, 4): the outbox in the ledger,
delivery ids, redirects, slow receivers. Against a local HTTP receiver on 127.0.0.1; what the
ledger holds is read with SQL written here."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa

from backfill.alerts import AlertSecrets
from backfill.launch import run_here
from backfill.request import BackfillRequest
from backfill.watch import EXIT_NOT_DELIVERED, run_check

ROOT = Path(__file__).resolve().parents[1]
WEEK = (dt.date(2022, 1, 3), dt.date(2022, 1, 9))
DAY = dt.date(2022, 1, 5)


class Receiver:
    """A webhook receiver: each request is kept (path, delivery id, body) on arrival; it then answers
    by its script: an HTTP status, ``("redirect", status, path)``, or ``"hang"`` (no answer until
    the receiver closes)."""

    def __init__(self, script=()):
        self.script = list(script)
        self.requests: list[tuple[str, str | None, dict]] = []
        self.arrived = threading.Condition()
        self.closing = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.arrived:
                    receiver.requests.append((self.path, self.headers.get("Idempotency-Key"), body))
                    step = receiver.script.pop(0) if receiver.script else 200
                    receiver.arrived.notify_all()
                if step == "hang":
                    receiver.closing.wait(60)
                    return
                if isinstance(step, tuple):
                    _, status, path = step
                    self.send_response(status)
                    self.send_header("Location", path)
                else:
                    self.send_response(step)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def do_GET(self):
                with receiver.arrived:
                    receiver.requests.append((self.path, None, {"method": "GET"}))
                    receiver.arrived.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, count: int, within_s: float) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.requests) >= count, within_s), self.requests

    def texts(self) -> list[str]:
        return [body.get("text", "") for _, _, body in self.requests]

    def close(self):
        self.closing.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def make(script=()):
        made.append(Receiver(script))
        return made[-1]

    yield make
    for server in made:
        server.close()


def _delete_predictions(demo, day: dt.date) -> None:
    demo.execute("DELETE FROM {pred} WHERE game_date = @d", {"d": day})


def _check(settings, demo, hook: Receiver):
    return run_check(
        settings, demo, *WEEK, who="cron", secrets=AlertSecrets(webhook_url=hook.url), sleep=lambda s: None
    )


def _outbox(settings) -> list[tuple[str, str, int]]:
    engine = sa.create_engine(f"sqlite:///{settings.ledger}")
    with engine.connect() as connection:
        rows = connection.execute(
            sa.text("SELECT delivery_id, status, attempts FROM alert_outbox ORDER BY created_at")
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


@pytest.mark.slow
def test_a_check_killed_during_delivery_leaves_the_alert_to_the_next_check(
    receiver, demo, settings, tmp_path
):
    hanging = receiver(["hang"])
    _delete_predictions(demo, DAY)
    demo.close()
    environment = os.environ | {
        "PYTHONPATH": str(ROOT),
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_ALERT_WEBHOOK_URL": hanging.url,
        "BACKFILL_SECRETS_FILE": str(tmp_path / "none.toml"),
    }
    cli = subprocess.Popen(
        [sys.executable, "-m", "backfill", "check", "--start", WEEK[0].isoformat(), "--end", WEEK[1].isoformat()],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        hanging.wait_for(1, 60)
    finally:
        cli.kill()
        cli.wait()
    ((_, first_id, first_body),) = hanging.requests
    assert f"- {DAY} predictions missing" in first_body["text"]
    ((delivery_id, status, _),) = _outbox(settings)
    assert (delivery_id, status) == (first_id, "pending")

    working = receiver()
    result = _check(settings, demo, working)
    ((_, second_id, body),) = working.requests
    assert second_id == first_id  # the same alert: a receiver that got the first can drop this one
    assert f"New:\n- {DAY} predictions missing" in body["text"]
    assert result.exit_code == 1 and [d.status for d in result.deliveries] == ["sent"]
    assert _outbox(settings)[0][1] == "sent"
    _check(settings, demo, working)
    assert len(working.requests) == 1  # sent once: never again


def test_a_resolved_message_that_failed_is_sent_by_the_next_check(receiver, demo, settings):
    working = receiver()
    _delete_predictions(demo, DAY)
    _check(settings, demo, working)
    assert len(working.requests) == 1
    request = BackfillRequest.build(settings, dates=[DAY], today=lambda: dt.date(2026, 11, 30))
    assert run_here(settings, request, "tester").status == "succeeded"

    down = receiver([503] * 10)
    failed = _check(settings, demo, down)
    assert failed.exit_code == EXIT_NOT_DELIVERED
    assert all("Resolved:" in text for text in down.texts()) and len(down.requests) == settings.max_attempts

    _check(settings, demo, working)
    assert len(working.requests) == 2
    assert f"Resolved:\n- {DAY} predictions back to ok" in working.texts()[1]
    assert [status for _, status, _ in _outbox(settings)] == ["sent", "sent"]


def test_a_302_is_a_failed_delivery_and_nothing_is_fetched(receiver, demo, settings):
    hook = receiver([("redirect", 302, "/elsewhere")])
    _delete_predictions(demo, DAY)
    result = _check(settings, demo, hook)
    (delivery,) = result.deliveries
    assert (delivery.status, delivery.attempts) == ("failed", 1)
    assert "302" in delivery.error
    assert [path for path, _, _ in hook.requests] == ["/hook"]  # no GET of /elsewhere
    assert result.exit_code == EXIT_NOT_DELIVERED


def test_a_307_is_followed_with_the_alert(receiver, demo, settings):
    hook = receiver([("redirect", 307, "/moved")])
    _delete_predictions(demo, DAY)
    result = _check(settings, demo, hook)
    assert [d.status for d in result.deliveries] == ["sent"]
    assert [path for path, _, _ in hook.requests] == ["/hook", "/moved"]
    assert f"- {DAY} predictions missing" in hook.texts()[1]


def test_a_receiver_slower_than_the_timeout_gets_one_delivery_per_attempt(receiver, demo, settings):
    slow = receiver(["hang"] * 10)  # answers after 30 s at the earliest: past every timeout here
    settings = settings.replace(max_attempts=2, alert_timeout_s=1.0)
    _delete_predictions(demo, DAY)
    began = time.monotonic()
    result = _check(settings, demo, slow)
    assert time.monotonic() - began < 30
    (delivery,) = result.deliveries
    assert (delivery.status, delivery.attempts) == ("failed", 2)
    slow.wait_for(2, 10)
    assert len(slow.requests) == 2
    assert len({delivery_id for _, delivery_id, _ in slow.requests}) == 1
    assert _outbox(settings) == [(slow.requests[0][1], "pending", 2)]
