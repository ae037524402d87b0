"""Transient or permanent: the one place that decides whether a failed statement is worth retrying.

Data plus one predicate, as in google-cloud-bigquery's own ``retry.py``: exception types, BigQuery
error reasons and DuckDB lock conflicts that are transient; errors known to be permanent (bad SQL,
not found, permission); and, for anything else, the team's message keywords as the fallback.
Google exception classes are recognised by name so this module needs no Google import.
"""

from __future__ import annotations

import concurrent.futures
import urllib.error
from collections.abc import Iterator

from backfill.errors import BadInput

TRANSIENT = "transient"
PERMANENT = "permanent"

TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    TimeoutError,
    concurrent.futures.TimeoutError,
    ConnectionError,  # ConnectionResetError, ConnectionRefusedError, BrokenPipeError, ...
)
"""Python exception types that say the request did not get through, not that it was wrong."""

TRANSIENT_API_ERRORS = frozenset(
    {
        "ServiceUnavailable",  # 503
        "DeadlineExceeded",  # 504 from the API layer
        "InternalServerError",  # 500
        "BadGateway",  # 502
        "GatewayTimeout",  # 504
        "TooManyRequests",  # 429
    }
)
"""``google.api_core.exceptions`` classes that a later attempt may not meet."""

TRANSIENT_REASONS = frozenset(
    {
        "backendError",
        "rateLimitExceeded",  # BigQuery reports rate limits as 403 with this reason
        "internalError",
        "jobRateLimitExceeded",
        "jobBackendError",
        "jobInternalError",
    }
)
"""BigQuery error reasons worth retrying whatever the HTTP status says."""

TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
"""HTTP answers of a plain HTTP receiver (an alert webhook) that a later attempt may not meet;
any other error status (400, 403, 404...) fails the same way again."""

PERMANENT_API_ERRORS = frozenset({"BadRequest", "NotFound", "Forbidden", "Unauthorized", "Conflict"})
"""Client errors that will fail the same way again, unless their reason says otherwise."""

PERMANENT_DUCKDB_ERRORS = frozenset(
    {"ParserException", "BinderException", "CatalogException", "ConversionException", "ConstraintException"}
)
"""DuckDB errors of the statement itself: bad SQL, unknown table, wrong types."""

TRANSIENT_KEYWORDS = ("timeout", "timed out", "connection", "reset", "refused", "unavailable", "deadline")
"""The team's hand-written fallback: message words of errors they retried by hand."""

_DUCKDB_LOCK_WORDS = ("could not set lock", "conflicting lock", "database is locked")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and those it was raised from, nearest first (cycles cut)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _class_names(exc: BaseException, package: str) -> set[str]:
    return {cls.__name__ for cls in type(exc).__mro__ if cls.__module__.startswith(package)}


def _reasons(exc: BaseException) -> set[str]:
    """BigQuery error reasons carried by an API exception (``errors=[{"reason": ...}]``)."""
    reasons = {getattr(exc, "reason", None)}
    for error in getattr(exc, "errors", None) or ():
        if isinstance(error, dict):
            reasons.add(error.get("reason"))
    return {reason for reason in reasons if isinstance(reason, str)}


def classify(exc: BaseException) -> str:
    """``"transient"`` if retrying may succeed, else ``"permanent"``."""
    chain = list(_chain(exc))
    for link in chain:
        if _reasons(link) & TRANSIENT_REASONS:
            return TRANSIENT
        if isinstance(link, TRANSIENT_TYPES) or _class_names(link, "google.api_core") & TRANSIENT_API_ERRORS:
            return TRANSIENT
        if _duckdb_conflict(link):
            return TRANSIENT
        if isinstance(link, urllib.error.HTTPError) and link.code in TRANSIENT_HTTP_STATUSES:
            return TRANSIENT
    for link in chain:
        if isinstance(link, urllib.error.HTTPError):
            return PERMANENT
        if isinstance(link, BadInput) or _class_names(link, "google.api_core") & PERMANENT_API_ERRORS:
            return PERMANENT
        if (_class_names(link, "duckdb") | _class_names(link, "_duckdb")) & PERMANENT_DUCKDB_ERRORS:
            return PERMANENT
    message = " ".join(str(link) for link in chain).lower()
    return TRANSIENT if any(word in message for word in TRANSIENT_KEYWORDS) else PERMANENT


def _duckdb_conflict(exc: BaseException) -> bool:
    """Another process holds the DuckDB file, or a concurrent transaction wrote the same rows."""
    names = _class_names(exc, "duckdb") | _class_names(exc, "_duckdb")
    message = str(exc).lower()
    if "TransactionException" in names and "conflict" in message:
        return True
    return "IOException" in names and any(word in message for word in _DUCKDB_LOCK_WORDS)


def is_lock_conflict(exc: BaseException) -> bool:
    """Whether the DuckDB file is locked by another process (worth waiting a moment for)."""
    return any(_duckdb_conflict(link) for link in _chain(exc))


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth another attempt (the retry policy's predicate)."""
    return classify(exc) == TRANSIENT
