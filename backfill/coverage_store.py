"""Where a coverage snapshot is kept between processes: one file per warehouse and pipeline.

A fresh process (the console's server, each CLI command) loads the snapshot a previous process kept
and re-measures only the dates whose fingerprint changed since (:mod:`backfill.coverage_snapshot`).
A kept snapshot is used only for exactly what it was measured under; its file name is a hash of:

- the format of the file (:data:`FORMAT`);
- the warehouse's URL and kind (a DuckDB file's absolute path, a BigQuery project);
- the pipeline file's text, and the coverage and fingerprint SQL rendered with this warehouse's
  table references (stages, tables, columns, datasets as renamed by the settings, and the bootstrap
  and date-range rules as written in the SQL), with each stage's ``bootstrap_min_history``.

Anything else changes no count. A file that is missing, damaged, of another format or key, or cut
short by a crash reads as absent (:mod:`backfill.cache_files`): everything is measured anew and the
file rewritten whole. Two processes saving at once each write a whole file; the last one stays.
A warehouse with no lasting identity (DuckDB ``:memory:``) keeps nothing.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backfill import cache_files
from backfill.config import Settings

if TYPE_CHECKING:
    from backfill.warehouse import Warehouse


@contextlib.contextmanager
def collection_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused for a block that builds many objects and frees none:
    reading a kept snapshot (on 50 seasons, some 100,000 lists, dates and tuples). Each collection the
    block set off walked every object it had built so far, and reading took twice as long as the
    parsing alone (issue 13). Nothing the block builds is garbage, so pausing loses nothing."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


FORMAT = 1
"""Version of the kept state's layout and of the rules that produce it; raise it when either changes."""


class CoverageStore:
    """The kept state of one warehouse under one pipeline: load it, save it."""

    def __init__(self, path: Path, key: str):
        self.path = path
        self.key = key

    @classmethod
    def of(cls, warehouse: Warehouse, settings: Settings, sql: list[str]) -> CoverageStore | None:
        """The store of this warehouse and pipeline (``sql``: the templates the counts come from), or
        None when caching is off or the warehouse has no lasting identity."""
        folder = settings.cache_path("coverage")
        url = warehouse.url
        if folder is None or (warehouse.IN_LOCAL_FILES and type(warehouse).local_file(url) is None):
            return None
        from backfill.warehouse import sql as sqlmod

        refs = warehouse.table_refs()
        pipeline = settings.pipeline
        material = {
            "format": FORMAT,
            "warehouse": [warehouse.kind, url],
            "pipeline": pipeline.content_hash,
            "sql": [sqlmod.render(template, refs) for template in sql],
            "bootstrap": {stage.name: stage.bootstrap_min_history for stage in pipeline.backfillable},
        }
        key = hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()
        return cls(folder / f"{key}.json", key)

    def load(self) -> dict[str, Any] | None:
        """The state saved last, or None when there is none intact for this key."""
        payload = cache_files.read(self.path)
        if payload is None:
            return None
        try:
            saved = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(saved, dict) or saved.get("format") != FORMAT or saved.get("key") != self.key:
            return None
        state = saved.get("state")
        return state if isinstance(state, dict) else None

    def save(self, state: dict[str, Any]) -> bool:
        """Replace the saved state whole; False when the disk refused (the next process measures)."""
        payload = json.dumps({"format": FORMAT, "key": self.key, "state": state}, separators=(",", ":"))
        try:
            cache_files.write(self.path, payload.encode())
        except OSError:
            return False
        return True
