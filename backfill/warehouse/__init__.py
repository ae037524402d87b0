"""Warehouse adapters behind one interface, and the factory that picks one from a URL.

``BACKFILL_WAREHOUSE`` names the warehouse by URL: the scheme picks the adapter from
:data:`ADAPTERS` (``bigquery://PROJECT``; ``duckdb:///PATH``), a URL without a scheme is a path for
:data:`DEFAULT_ADAPTER` (a DuckDB file, or ``:memory:``), and the adapter class itself reads the rest
of the URL (``parse_location``). Adding a warehouse is one module (its adapter class), one line
here and its tests.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from backfill.config import Settings
from backfill.errors import BadInput

if TYPE_CHECKING:  # the adapters import pandas and their engine's client: imported only when used
    from backfill.warehouse.base import Warehouse

ADAPTERS = {
    "duckdb": "backfill.warehouse.duckdb:DuckDBWarehouse",
    "bigquery": "backfill.warehouse.bigquery:BigQueryWarehouse",
}
"""Adapter class of each URL scheme, imported only when a URL of that scheme is used."""

DEFAULT_ADAPTER = "duckdb"
"""The adapter of a URL without a scheme (a file path)."""


def adapter_class(kind: str) -> type[Warehouse]:
    """The adapter class of a URL scheme (imports its module)."""
    module, name = ADAPTERS[kind].split(":")
    return getattr(importlib.import_module(module), name)


def scheme(url: str) -> str:
    """The adapter kind a URL names by its scheme (no import); raises BadInput for an unknown one."""
    url = (url or "").strip()
    if not url:
        raise BadInput("warehouse URL is empty")
    if "://" not in url:
        return DEFAULT_ADAPTER
    kind = url.split("://", 1)[0].lower()  # URL schemes are case-insensitive (RFC 3986)
    if kind not in ADAPTERS:
        known = " or ".join(f"{name}://..." for name in ADAPTERS)
        raise BadInput(f"malformed warehouse URL {url!r} (a file path, {known})")
    return kind


def parse_url(url: str) -> tuple[str, str]:
    """(kind, location) of a warehouse URL, read by its adapter class; raises BadInput for a malformed one."""
    kind = scheme(url)
    url = url.strip()
    if "://" in url:
        url = f"{kind}://{url.split('://', 1)[1]}"
    return kind, adapter_class(kind).parse_location(url)


def connect(settings: Settings, url: str | None = None) -> Warehouse:
    """The adapter for ``url`` (default: the configured warehouse); its target must exist."""
    kind, location = parse_url(url or settings.warehouse)
    adapter = adapter_class(kind)
    adapter.check_exists(location)
    # Every adapter's constructor takes (settings, location); the base class's takes only settings.
    return adapter(settings, location)  # type: ignore[call-arg]


def __getattr__(name: str):
    if name == "Warehouse":
        from backfill.warehouse.base import Warehouse

        return Warehouse
    raise AttributeError(name)


__all__ = ["ADAPTERS", "DEFAULT_ADAPTER", "Warehouse", "adapter_class", "connect", "parse_url", "scheme"]
