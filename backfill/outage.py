"""What a reader of the console (or the CLI) is told when the warehouse or the ledger fails them.

Two kinds, decided by :mod:`backfill.faults` (the one place deciding transient or not): a *busy*
store (another process holds the DuckDB file, a connection dropped) is waited out; anything else is
one line saying what went wrong and what to do. Errors of the program itself (a KeyError, a bad
Streamlit call) are not outages: :func:`outage_of` returns None for them, so tests still see them.
"""

from __future__ import annotations

from dataclasses import dataclass

from backfill import faults
from backfill.errors import BackfillError

STORE_MODULES = frozenset({"duckdb", "_duckdb", "google", "sqlalchemy", "sqlite3", "psycopg", "psycopg2"})
"""Top-level modules whose exceptions come from a warehouse or a ledger database."""

WAIT_HINT = "The page retries by itself; nothing to do unless it lasts (then see Runs for a long backfill)."
FIX_HINT = "Check the warehouse and ledger settings (python -m backfill doctor), then press Refresh data."


@dataclass(frozen=True)
class Outage:
    """Why the console cannot read now: ``waiting`` if it is worth retrying by itself."""

    waiting: bool
    what: str
    """One line: what failed, in the engine's own first words."""
    todo: str
    """One line: what to do about it."""

    @property
    def text(self) -> str:
        return f"{self.what} {self.todo}"


def _from_store(exc: BaseException) -> bool:
    return any(
        isinstance(link, (BackfillError, OSError)) or type(link).__module__.split(".")[0] in STORE_MODULES
        for link in faults.chain(exc)
    )


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The exception's message, first line only, without the engine's class prefix noise."""
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def outage_of(exc: BaseException) -> Outage | None:
    """The outage an exception means, or None when it is a bug of the program, not of a store."""
    if not _from_store(exc):
        return None
    if faults.is_lock_conflict(exc):
        return Outage(
            True,
            "Waiting for the warehouse: another process (a backfill, a second console) holds it.",
            WAIT_HINT,
        )
    if faults.is_transient(exc):
        return Outage(True, f"Waiting for the warehouse or the ledger: {first_line(exc)}.", WAIT_HINT)
    return Outage(False, f"Cannot read the data: {first_line(exc)}.", faults.explain(exc) or FIX_HINT)
