"""What every warehouse job is for and who asked: the labels that let a bill be read.

On BigQuery each job carries these as job labels, so ``INFORMATION_SCHEMA.JOBS`` and the billing
export can split bytes billed by action (a page view, a check, a run, a stale delete, a smoke test,
the doctor), by stage where a job has one, and by user. The user is a hash, not a name: labels are
visible to anyone who can list the project's jobs.
"""

from __future__ import annotations

import hashlib

ACTIONS = frozenset({"page", "check", "run", "stale_delete", "smoke", "doctor"})
"""Why a job was sent: the console's pages, a CLI read (coverage, gaps, stale, watch), a backfill
run, a stale-row deletion, ``smoke``, ``doctor``."""


def user_hash(who: str) -> str:
    """A short, stable hash of a user name (case-insensitive): the same person, the same label."""
    return hashlib.sha256(who.strip().lower().encode()).hexdigest()[:16]


def job_labels(action: str, who: str | None = None) -> dict[str, str]:
    """``action`` (one of :data:`ACTIONS`) and, when known, ``user`` (:func:`user_hash`)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown job action {action!r}")
    return {"action": action} | ({"user": user_hash(who)} if who else {})
