"""Whether the warehouse changed: one fingerprint of every table the console reads.

The console reads all its figures at one fingerprint, so two widgets of a page never show data of
two moments, and it reads again only when the fingerprint moves. The fingerprint is the
warehouse's change stamp where it has one, else the per-date one :mod:`backfill.coverage_snapshot`
keeps, over every date, folded into one string.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from backfill.coverage_snapshot import fingerprint_sql
from backfill.pipeline import Pipeline
from backfill.warehouse import Warehouse

EVERY_DATE = {
    "start": dt.date(1900, 1, 1),
    "end": dt.date(2999, 12, 31),
    "history_start": dt.date(1900, 1, 1),
}


def warehouse_fingerprint(warehouse: Warehouse, pipeline: Pipeline) -> str:
    """A short hash that changes when any row of the pipeline's tables changes: the warehouse's
    change stamp where it has one (a DuckDB file's identity, size and times, once settled: nothing is
    read), else one cheap scan. Going from one to the other reads the figures once more, no harm."""
    stamp = warehouse.change_stamp()
    if stamp is not None:
        # The stamp is read without the file; opening it still says whether it can be read now (a
        # file another process holds is waited out, then reported, as a scan would be).
        with warehouse.session():
            pass
        return hashlib.sha256(f"stamp\n{stamp}".encode()).hexdigest()[:16]
    rows = warehouse.query(fingerprint_sql(pipeline), EVERY_DATE)
    parts = sorted(
        f"{source}|{day}|{int(count)}|{int(key_hash)}"
        for source, day, count, key_hash in zip(
            rows["source"], rows["game_date"], rows["row_count"], rows["key_hash"], strict=True
        )
    )
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
