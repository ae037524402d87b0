"""The run ledger, shared by every console, CLI and worker: SQLite by default, PostgreSQL for a team."""

from backfill.ledger.core import HEARTBEAT_TIMEOUT_S, AlreadyLaunched, Ledger, new_run_id, now_utc
from backfill.ledger.database import LedgerUnavailable
from backfill.ledger.leases import LeaseConflict, LeaseLost
from backfill.ledger.records import Run
from backfill.ledger.status import (
    ITEM_FINAL,
    ITEM_OPEN,
    RUN_ACTIVE,
    IllegalTransition,
    ItemStatus,
    RunStatus,
)

__all__ = [
    "AlreadyLaunched",
    "HEARTBEAT_TIMEOUT_S",
    "ITEM_FINAL",
    "ITEM_OPEN",
    "RUN_ACTIVE",
    "IllegalTransition",
    "ItemStatus",
    "LeaseConflict",
    "LeaseLost",
    "Ledger",
    "LedgerUnavailable",
    "Run",
    "RunStatus",
    "new_run_id",
    "now_utc",
]
