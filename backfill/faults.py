"""Transient or permanent: the one place that decides whether a failed statement is worth retrying.

Data plus one predicate, as in google-cloud-bigquery's own ``google/cloud/bigquery/retry.py``
(``_RETRYABLE_REASONS``, ``_UNSTRUCTURED_RETRYABLE_TYPES`` and ``_should_retry``). The *data* about
an engine's errors (its exception classes, error reasons and message fragments) is declared by that
engine's adapter module as an :class:`EngineErrors` and registered here when the adapter class is
defined (``Warehouse.ERRORS``); the *decision* is :func:`classify`, here only. Engine classes are
named as text (``"google.api_core.exceptions.BadRequest"``), so this module, and DuckDB users, never
import a Google library.

The order of the decision, per exception in the chain (nearest first), mirrors the official client:

1. our own :class:`BadInput` and :class:`WarehouseRefused`, and types never worth retrying (``requests.exceptions.SSLError``,
   the client's ``_UNSTRUCTURED_NON_RETRYABLE_TYPES``): permanent;
2. a refusal that only time lifts (BigQuery's DML on rows still in the streaming buffer): its own
   class, :data:`LATER`, not retried within the policy's minutes but marked for a rerun later;
3. a reason that only says "stopped" or "timeout" together with a message saying the job timed out
   (BigQuery's ``job_timeout_ms`` stopping it): transient, as a timeout anywhere is;
4. message fragments that name a conflict with another writer (DuckDB's file lock; BigQuery's
   "Could not serialize access to table ... due to concurrent update", which BigQuery reports as
   ``invalidQuery``/400): transient, whatever the reason or class says;
5. the structured error *reason* (``errors[0]["reason"]``, as ``_should_retry`` reads it): transient
   if some engine lists it as transient, otherwise permanent; an unknown reason is permanent, as the
   client treats it (it retries only reasons it knows);
6. the exception *class* (the engine's transient classes, then its permanent ones, then Python's own
   timeouts and connection errors);

and, for anything no rule knows, the team's message keywords as the fallback (SPEC 1, 4.4).
"""

from __future__ import annotations

import concurrent.futures
import urllib.error
from collections.abc import Mapping
from dataclasses import dataclass, field

from backfill.errors import BadInput, GaveUp, TryLater, WarehouseRefused

TRANSIENT = "transient"
PERMANENT = "permanent"
LATER = "later"
"""Refused for now by the warehouse's own state, lifted by time alone (rows in BigQuery's streaming
buffer, flushed within about 90 minutes): another attempt within the retry policy's minutes fails
the same way, so the item fails with this class and a message saying when to rerun it."""

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    concurrent.futures.TimeoutError,  # the same class as TimeoutError since Python 3.11
    ConnectionError,  # ConnectionResetError, ConnectionRefusedError, BrokenPipeError, ...
)
"""Python exception types that say the request did not get through, not that it was wrong."""

TRANSIENT_KEYWORDS = ("timeout", "timed out", "connection", "reset", "refused", "unavailable", "deadline")
"""The team's hand-written fallback: message words of errors they retried by hand."""


@dataclass(frozen=True)
class EngineErrors:
    """What one warehouse engine's errors mean; declared by its adapter module, judged by :func:`classify`.

    Class names are ``"module.Name"`` as Python reports them, matched along the exception's MRO.
    """

    engine: str
    label: str = ""
    """How people call the engine ("BigQuery"), in messages."""
    transient_types: frozenset[str] = frozenset()
    """Classes that say the request or the connection failed, not the statement."""
    permanent_types: frozenset[str] = frozenset()
    """Classes of errors in the statement or the request itself (bad SQL, not found, permission)."""
    never_transient_types: frozenset[str] = frozenset()
    """Subclasses of a transient class that still will not succeed later (a TLS misconfiguration)."""
    transient_reasons: frozenset[str] = frozenset()
    """Structured error reasons worth another attempt, whatever the HTTP status."""
    permanent_reasons: Mapping[str, str] = field(default_factory=dict)
    """Reasons a retry cannot fix, each with one line saying what to change ("" if nothing to say)."""
    conflict_messages: tuple[tuple[str, str], ...] = ()
    """(class name or "", lower-case message fragment): another writer or process got in the way;
    waiting and trying again is the answer, whatever the class or reason says."""
    lock_messages: tuple[tuple[str, str], ...] = ()
    """Like ``conflict_messages``, for a lock on the whole warehouse (worth waiting out at open)."""
    timeout_reasons: tuple[tuple[str, str], ...] = ()
    """(reason, lower-case message fragment): a reason that is permanent on its own ("stopped": a
    user may cancel a job too) but transient when the message says the job timed out."""
    later_messages: Mapping[str, str] = field(default_factory=dict)
    """Lower-case message fragment -> one line saying why and when to try again: refusals that only
    time lifts (:data:`LATER`)."""


_ENGINES: dict[str, EngineErrors] = {}


def register(errors: EngineErrors) -> None:
    """Let :func:`classify` consult an engine's error data (adapters call this when defined)."""
    _ENGINES[errors.engine] = errors


def engines() -> tuple[EngineErrors, ...]:
    """The registered engines' error data."""
    return tuple(_ENGINES.values())


def _links(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from, nearest first (cycles cut).

    ``google.api_core.exceptions.RetryError`` (the client's own retry gave up) keeps the last error
    as ``.cause``; it is followed too.
    """
    seen: set[int] = set()
    links: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        links.append(current)
        cause = getattr(current, "cause", None)
        # ``raise ... from None`` hides the context on purpose (a job's own words replace it).
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or (cause if isinstance(cause, BaseException) else None) or context
    return links


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and those it was raised from, nearest first (what the rules here look at)."""
    return _links(exc)


def type_names(exc: BaseException) -> frozenset[str]:
    """``module.Name`` of the exception's class and of every class it derives from."""
    return frozenset(f"{cls.__module__}.{cls.__name__}" for cls in type(exc).__mro__)


def reason(exc: BaseException) -> str | None:
    """The structured error reason of an API exception, read as the official client reads it
    (``exc.errors[0]["reason"]``, in ``google.cloud.bigquery.retry._should_retry``)."""
    try:
        value = exc.errors[0]["reason"]  # type: ignore[attr-defined]
    except (AttributeError, IndexError, TypeError, KeyError):
        return None
    return value if isinstance(value, str) and value else None


def _matches(rules: tuple[tuple[str, str], ...], names: frozenset[str], message: str) -> bool:
    return any(fragment in message and (not cls or cls in names) for cls, fragment in rules)


TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP answers of a plain HTTP receiver (an alert webhook) that a later attempt may not meet;
any other error status (400, 403, 404...) fails the same way again."""


def _verdict(exc: BaseException) -> str | None:
    """Transient, permanent, later, or None when no rule speaks about this one exception."""
    if isinstance(exc, TryLater):
        return LATER
    if isinstance(exc, (BadInput, WarehouseRefused, GaveUp)):
        return PERMANENT
    if isinstance(exc, urllib.error.HTTPError):  # a plain HTTP receiver (an alert webhook)
        return TRANSIENT if exc.code in TRANSIENT_HTTP_STATUSES else PERMANENT
    names = type_names(exc)
    message = str(exc).lower()
    known = engines()
    if any(names & engine.never_transient_types for engine in known):
        return PERMANENT
    if any(fragment in message for engine in known for fragment in engine.later_messages):
        return LATER
    why = reason(exc)
    if why is not None and any(
        why == timed_out and fragment in message
        for engine in known
        for timed_out, fragment in engine.timeout_reasons
    ):
        return TRANSIENT
    if any(_matches(engine.conflict_messages + engine.lock_messages, names, message) for engine in known):
        return TRANSIENT
    if why is not None:
        if any(why in engine.permanent_reasons for engine in known):
            return PERMANENT
        return TRANSIENT if any(why in engine.transient_reasons for engine in known) else PERMANENT
    if any(names & engine.transient_types for engine in known):
        return TRANSIENT
    if any(names & engine.permanent_types for engine in known):
        return PERMANENT
    if isinstance(exc, TRANSIENT_TYPES):
        return TRANSIENT
    return None


def classify(exc: BaseException) -> str:
    """``"transient"`` if retrying may succeed, ``"later"`` if only time lifts the refusal (see
    :data:`LATER`), else ``"permanent"``."""
    chain = _links(exc)
    for link in chain:
        verdict = _verdict(link)
        if verdict is not None:
            return verdict
    message = " ".join(str(link) for link in chain).lower()
    return TRANSIENT if any(word in message for word in TRANSIENT_KEYWORDS) else PERMANENT


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth another attempt (the retry policy's predicate)."""
    return classify(exc) == TRANSIENT


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether another process holds the warehouse (worth waiting a moment for at open)."""
    return any(
        _matches(engine.lock_messages, type_names(link), str(link).lower())
        for link in _links(exc)
        for engine in engines()
    )


def later_hint(exc: BaseException) -> str | None:
    """Why a :data:`LATER` refusal happened and when to try again, in one line (None for others)."""
    for link in _links(exc):
        message = str(link).lower()
        for engine in engines():
            for fragment, hint in engine.later_messages.items():
                if fragment in message:
                    return hint
    return None


def explain(exc: BaseException) -> str | None:
    """One line saying what to change, for a permanent error whose reason an engine explains."""
    for link in _links(exc):
        why = reason(link)
        for engine in engines():
            hint = engine.permanent_reasons.get(why or "")
            if hint:
                detail = (str(getattr(link, "message", None) or link).strip().splitlines() or [""])[0]
                return f"{hint} ({engine.label or engine.engine} said {why}: {detail[:200]})"
    return None
