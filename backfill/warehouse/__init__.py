"""Warehouse adapters behind one interface, and the factory that picks one from a URL.

``BACKFILL_WAREHOUSE`` names the warehouse: a DuckDB file path (``data/warehouse.duckdb``,
optionally ``duckdb:///path``), ``:memory:``, or ``bigquery://PROJECT``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.validate import check_project

if TYPE_CHECKING:  # the adapters import pandas and sqlglot; parse_url must stay instant
    from backfill.warehouse.base import Warehouse

ADAPTERS = {
    "duckdb": "backfill.warehouse.duckdb:DuckDBWarehouse",
    "bigquery": "backfill.warehouse.bigquery:BigQueryWarehouse",
}
"""Adapter class of each warehouse kind, imported only when used."""


def _adapter(kind: str) -> type[Warehouse]:
    module, name = ADAPTERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def parse_url(url: str) -> tuple[str, str]:
    """(kind, location) of a warehouse URL; raises BadInput for a malformed one."""
    url = (url or "").strip()
    if not url:
        raise BadInput("warehouse URL is empty")
    if url.startswith("bigquery://"):
        project = url.removeprefix("bigquery://").strip("/")
        if not project or "/" in project:
            raise BadInput(f"malformed warehouse URL {url!r} (expected bigquery://PROJECT)")
        return "bigquery", check_project(project)
    if url.startswith("duckdb://"):
        path = url.removeprefix("duckdb://")
        path = path[1:] if path.startswith("//") else path
        if not path:
            raise BadInput(f"malformed warehouse URL {url!r} (expected duckdb:///PATH)")
        return "duckdb", path
    if "://" in url:
        raise BadInput(f"malformed warehouse URL {url!r} (a DuckDB path or bigquery://PROJECT)")
    return "duckdb", url


def connect(settings: Settings, url: str | None = None) -> Warehouse:
    """The adapter for ``url`` (default: the configured warehouse); a DuckDB file must exist."""
    kind, location = parse_url(url or settings.warehouse)
    if kind == "duckdb" and location != ":memory:" and not Path(location).is_file():
        raise BadInput(
            f"DuckDB warehouse {location} does not exist (create a demo with: python -m backfill demo --warehouse {location})"
        )
    return _adapter(kind)(settings, location)


def __getattr__(name: str):
    if name == "Warehouse":
        from backfill.warehouse.base import Warehouse

        return Warehouse
    raise AttributeError(name)


__all__ = ["ADAPTERS", "Warehouse", "connect", "parse_url"]
