"""Alerts: tell people when a check finds a new problem or sees one recover.

Two channels, each optional:

- a webhook: ``BACKFILL_ALERT_WEBHOOK_URL``; the body is Slack's ``{"text": ...}`` (setting
  ``alert_webhook_format = "slack"``, the default) or, with ``"json"``, a generic object with the
  text and every new and resolved finding;
- e-mail: to ``alert_email_to`` through ``smtp_host``:``smtp_port`` (STARTTLS unless
  ``smtp_starttls`` is off; login with ``smtp_user`` and ``BACKFILL_SMTP_PASSWORD``).

Secrets (the webhook URL, which carries its token, and the SMTP password) come from the
environment or from ``.streamlit/secrets.toml`` (``[alerts] webhook_url = ...``,
``smtp_password = ...``; another file with ``BACKFILL_SECRETS_FILE``), never from the settings
file, and never reach the ledger or a log line: a delivery is recorded with the receiver's host only.

A delivery is retried by the one retry policy (:mod:`backfill.retry`; HTTP 5xx and 429, timeouts
and refused connections are transient, see :mod:`backfill.faults`) and its outcome recorded; a
failed delivery never fails the check, and stays in the outbox for the next one (:mod:`backfill.outbox`).
Each attempt is one request carrying the alert's delivery id (header ``Idempotency-Key``, and
``delivery_id`` in a JSON body; an e-mail's Message-ID), so a receiver can drop a repeat. A POST is
redirected only where the method is kept (307, 308); any other redirect is a failed delivery.
"""

from __future__ import annotations

import json
import os
import smtplib
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from backfill.config import MAX_ALERT_DELAY_S, Settings
from backfill.errors import BadInput
from backfill.retry import RetryPolicy
from backfill.validate import check_delays

WEBHOOK_URL_ENV = "BACKFILL_ALERT_WEBHOOK_URL"
SMTP_PASSWORD_ENV = "BACKFILL_SMTP_PASSWORD"
SECRETS_FILE_ENV = "BACKFILL_SECRETS_FILE"
DEFAULT_SECRETS_FILE = ".streamlit/secrets.toml"
"""Streamlit's own secrets file, so the console and the CLI share one place for secrets."""

WEBHOOK_FORMATS = ("slack", "json")


@dataclass(frozen=True)
class AlertSecrets:
    """The webhook URL and the SMTP password; their repr never shows them."""

    webhook_url: str | None = field(default=None, repr=False)
    smtp_password: str | None = field(default=None, repr=False)

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced, for messages that get stored or printed."""
        for secret in (self.webhook_url, self.smtp_password):
            if secret:
                text = text.replace(secret, "***")
        return text


def load_secrets(
    environ: Mapping[str, str] | None = None, secrets_file: str | Path | None = None
) -> AlertSecrets:
    """Secrets from the environment, else from the ``[alerts]`` table of the secrets file."""
    environ = os.environ if environ is None else environ
    path = Path(secrets_file or environ.get(SECRETS_FILE_ENV) or DEFAULT_SECRETS_FILE)
    from_file: dict[str, Any] = {}
    if path.is_file():
        try:
            from_file = tomllib.loads(path.read_text()).get("alerts", {})
        except tomllib.TOMLDecodeError:
            raise BadInput(f"secrets file {path} is not valid TOML") from None  # no content: it holds secrets
    return AlertSecrets(
        webhook_url=environ.get(WEBHOOK_URL_ENV) or from_file.get("webhook_url") or None,
        smtp_password=environ.get(SMTP_PASSWORD_ENV) or from_file.get("smtp_password") or None,
    )


@dataclass(frozen=True)
class Alert:
    """One message about one check: what is new, what recovered."""

    check_id: str
    subject: str
    text: str
    new: tuple[dict[str, Any], ...]
    resolved: tuple[dict[str, Any], ...]
    delivery_id: str | None = None
    """The outbox row's id, the same on every attempt: what a receiver deduplicates by."""

    def payload(self) -> dict[str, Any]:
        """The generic JSON body: the text plus the findings as data."""
        return {
            "delivery_id": self.delivery_id,
            "text": self.text,
            "subject": self.subject,
            "check_id": self.check_id,
            "new": list(self.new),
            "resolved": list(self.resolved),
        }


@dataclass(frozen=True)
class Delivery:
    """How one channel's delivery of an alert went."""

    channel: str
    target: str
    status: str  # sent | failed
    attempts: int
    error: str | None = None
    delivery_id: str | None = None
    check_id: str | None = None
    """The check whose alert this is (an earlier one's, for an alert retried from the outbox)."""


class Channel(Protocol):
    name: str
    target: str

    def send(self, alert: Alert) -> None: ...


class KeepMethodRedirects(urllib.request.HTTPRedirectHandler):
    """Follow a redirect only where the POST stays a POST with its body (307, 308); any other
    redirect is an HTTPError (urllib would follow 301, 302 and 303 as a GET without the alert)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if code in (307, 308):
            return urllib.request.Request(
                newurl, data=req.data, headers=dict(req.header_items()), method=req.get_method()
            )
        raise urllib.error.HTTPError(
            req.full_url, code, f"redirect {code} not followed: a POST must not become a GET", headers, fp
        )

    http_error_308 = urllib.request.HTTPRedirectHandler.http_error_302


_OPENER = urllib.request.build_opener(KeepMethodRedirects())


class WebhookChannel:
    """POST the alert as JSON to a webhook; any HTTP error status raises."""

    name = "webhook"

    def __init__(self, url: str, body_format: str, timeout_s: float, opener: Callable = _OPENER.open):
        self.url = url
        self.body_format = body_format
        self.timeout_s = timeout_s
        self.opener = opener
        parts = urllib.parse.urlsplit(url)
        self.target = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"

    def body(self, alert: Alert) -> dict[str, Any]:
        return {"text": alert.text} if self.body_format == "slack" else alert.payload()

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.body(alert), default=str).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Idempotency-Key": alert.delivery_id} if alert.delivery_id else {}),
            method="POST",
        )
        with self.opener(request, timeout=self.timeout_s) as response:
            response.read()


class EmailChannel:
    """Send the alert as a plain-text e-mail through an SMTP server."""

    name = "email"

    def __init__(self, settings: Settings, password: str | None):
        self.settings = settings
        self.password = password
        self.target = ", ".join(settings.alert_email_to)

    def send(self, alert: Alert) -> None:
        settings = self.settings
        message = EmailMessage()
        message["Subject"] = alert.subject
        message["From"] = settings.alert_email_from
        message["To"] = self.target
        if alert.delivery_id:
            message["Message-ID"] = f"<{alert.delivery_id}@backfill-console>"
        message.set_content(alert.text)
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.alert_timeout_s) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_user:
                smtp.login(settings.smtp_user, self.password or "")
            smtp.send_message(message)


def check_alert_settings(settings: Settings, secrets: AlertSecrets) -> None:
    """Refuse alert settings that could never deliver, before a check writes anything."""
    console = urllib.parse.urlsplit(settings.console_url)
    if console.scheme not in ("http", "https") or not console.netloc:
        raise BadInput(f"console_url {settings.console_url!r} is not an http(s) URL")
    if settings.alert_webhook_format not in WEBHOOK_FORMATS:
        raise BadInput(
            f"alert_webhook_format {settings.alert_webhook_format!r} is not one of {', '.join(WEBHOOK_FORMATS)}"
        )
    if secrets.webhook_url is not None:
        hook = urllib.parse.urlsplit(secrets.webhook_url)
        if hook.scheme not in ("http", "https") or not hook.hostname:
            raise BadInput(f"{WEBHOOK_URL_ENV} is not an http(s) URL")  # never echo it: it holds a token
    if settings.alert_email_to:
        if not settings.smtp_host:
            raise BadInput("alert_email_to is set but smtp_host is not")
        bad = [address for address in settings.alert_email_to if "@" not in address]
        if bad:
            raise BadInput(f"alert_email_to has an address without @: {bad[0]!r}")
        if not 0 < settings.smtp_port < 65536:
            raise BadInput(f"smtp_port must be between 1 and 65535, got {settings.smtp_port}")
    if settings.alert_timeout_s <= 0:
        raise BadInput("alert_timeout_s must be more than 0")
    check_delays(settings.alert_retry_delays, "alert_retry_delays", MAX_ALERT_DELAY_S)


def channels(settings: Settings, secrets: AlertSecrets) -> list[Channel]:
    """The configured channels (none when nothing is configured)."""
    configured: list[Channel] = []
    if secrets.webhook_url:
        configured.append(
            WebhookChannel(secrets.webhook_url, settings.alert_webhook_format, settings.alert_timeout_s)
        )
    if settings.alert_email_to:
        configured.append(EmailChannel(settings, secrets.smtp_password))
    return configured


def alert_policy(settings: Settings, sleep: Callable[[float], None] = time.sleep) -> RetryPolicy:
    """The retry policy for deliveries: the project's one policy, with the alert delays."""
    return RetryPolicy(max_attempts=settings.max_attempts, delays=settings.alert_retry_delays, sleep=sleep)


def deliver(
    alert: Alert, targets: list[Channel], policy: RetryPolicy, secrets: AlertSecrets
) -> list[Delivery]:
    """Send the alert on every channel under the retry policy; failures are returned, never raised."""
    deliveries = []
    for channel in targets:
        retries: list[int] = []

        def on_retry(attempt: int, error: BaseException, delay: float, retries=retries) -> None:
            retries.append(attempt)

        try:
            _, attempts = policy.call(partial(channel.send, alert), on_retry=on_retry)
            deliveries.append(
                Delivery(
                    channel.name, channel.target, "sent", attempts, None, alert.delivery_id, alert.check_id
                )
            )
        except Exception as exc:  # a delivery never fails the check: it is recorded instead
            error = secrets.redact(" ".join(f"{type(exc).__name__}: {exc}".split()))[:500]
            deliveries.append(
                Delivery(
                    channel.name,
                    channel.target,
                    "failed",
                    len(retries) + 1,
                    error,
                    alert.delivery_id,
                    alert.check_id,
                )
            )
    return deliveries
