"""Only declared writes (SPEC 9.1): the built-in demo pipeline writes only to a warehouse ``demo`` built.

The demo pipeline is the console's own two stages with its own toy models and versions. On a team's
warehouse it would replace the team's predictions with the demo's, so there every write (run,
resume, rerun, stale delete, from the CLI or the console) needs the team's own pipeline file; reads
work without one. ``demo`` marks the three tables it builds before any row goes in (BigQuery: table
labels; DuckDB: table comments), and a warehouse is the demo's only while all three carry the mark:
a copy of the demo's rows into tables of one's own is the team's data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from backfill.warehouse import Warehouse

DEMO_LABELS = {"backfill_demo": "true"}
"""What ``demo`` puts on each table it builds, before any row goes in."""

DECLARE_PIPELINE = (
    "declare your team's pipeline file (--pipeline PATH, BACKFILL_PIPELINE or ./pipeline.toml; "
    'see "Bring your own pipeline" in the README)'
)


def is_demo(warehouse: Warehouse) -> bool:
    """Whether all three of the demo's tables exist and carry the demo's mark (metadata only)."""
    found = warehouse.existing_tables()
    return len(found) == 3 and all(DEMO_LABELS.items() <= labels.items() for labels in found.values())


def refusal(warehouse: Warehouse) -> str | None:
    """Why the pipeline in use may not write to this warehouse, or None when it may."""
    if warehouse.settings.pipeline.path != "builtin" or is_demo(warehouse):
        return None
    return (
        f"the built-in demo pipeline writes only to a warehouse built by python -m backfill demo, and "
        f"{warehouse.describe()} was not (or was built before demos were marked: rebuild it); "
        f"{DECLARE_PIPELINE}"
    )
