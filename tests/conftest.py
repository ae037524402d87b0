"""Shared fixtures: a demo warehouse built once per session, copied for tests that write."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from backfill.config import Settings
from backfill.demo import build_demo_file
from backfill.warehouse.duckdb import DuckDBWarehouse
from tests.postgres import postgres_ledger, postgres_server  # noqa: F401 - fixtures for every test module

DEMO_SEED = 7

_NEEDS_POSTGRES = ("postgres_ledger", "postgres_server")


def pytest_collection_modifyitems(items):
    """Markers by what a test needs, so ``make test-fast`` can leave those out: ``browser`` (Chromium),
    ``emulator`` (the BigQuery emulator), ``postgres`` (a throwaway PostgreSQL server)."""
    for item in items:
        path = str(item.fspath)
        if "tests/browser" in path:
            item.add_marker(pytest.mark.browser)
        if "tests/bigquery" in path:
            item.add_marker(pytest.mark.emulator)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(name in getattr(item, "fixturenames", ()) for name in _NEEDS_POSTGRES) or (
            "postgresql" in params.values()
        ):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def demo_file(tmp_path_factory) -> Path:
    """A demo warehouse file (one season, seed 7), built once; never write to it."""
    path = tmp_path_factory.mktemp("demo") / "warehouse.duckdb"
    build_demo_file(path, Settings(warehouse=str(path)), seed=DEMO_SEED)
    return path


@pytest.fixture
def demo_copy(demo_file, tmp_path) -> Path:
    """A private copy of the demo warehouse file, for tests that write to it."""
    target = tmp_path / "warehouse.duckdb"
    shutil.copy(demo_file, target)
    return target


@pytest.fixture
def settings(demo_copy, tmp_path) -> Settings:
    """Settings pointing at a private demo copy and a private ledger, with no retry delays."""
    return Settings(
        warehouse=str(demo_copy),
        ledger=str(tmp_path / "ledger.sqlite"),
        retry_delays=(0.0, 0.0, 0.0),
    )


@pytest.fixture
def demo(settings) -> DuckDBWarehouse:
    """The adapter of the private demo copy."""
    warehouse = DuckDBWarehouse(settings, settings.warehouse)
    yield warehouse
    warehouse.close()


@pytest.fixture
def read_only_demo(demo_file, tmp_path) -> DuckDBWarehouse:
    """The adapter of the shared demo file, for tests that only read (caches kept in the test's folder)."""
    settings = Settings(warehouse=str(demo_file), cache_dir=str(tmp_path / "cache"))
    warehouse = DuckDBWarehouse(settings, demo_file)
    yield warehouse
    warehouse.close()
