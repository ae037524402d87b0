"""Adapters own their engine: the factory asks the adapter of a URL's scheme, callers never ask
which warehouse they have, and a third warehouse is one module, one registry line and its tests."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.warehouse import ADAPTERS, adapter_class, connect, parse_url
from backfill.warehouse.base import Warehouse
from backfill.warehouse.schema import Table

REPO = Path(__file__).resolve().parents[1]

KIND_CHECK = re.compile(
    r"""kind\s*[!=]=\s*["'](?:duckdb|bigquery)["']"""  # kind == "duckdb"
    r"""|["'](?:duckdb|bigquery)["']\s*[!=]=\s*\w*kind"""  # "bigquery" == warehouse.kind
    r"""|\w*warehouse\w*\.kind\s*(?:[!=]=|(?:not\s+)?in\b)"""  # warehouse.kind == ..., warehouse.kind in (...)
    r"""|isinstance\([^)]*(?:DuckDB|BigQuery)Warehouse"""  # isinstance(warehouse, DuckDBWarehouse)
)
"""Ways of asking which warehouse one has, instead of asking the adapter (a flag or a hook)."""


def _sources() -> list[Path]:
    files = [REPO / "app.py", *(REPO / "pages").rglob("*.py"), *(REPO / "ui").rglob("*.py")]
    files += [path for path in (REPO / "backfill").rglob("*.py") if "warehouse" not in path.parts]
    return files


def test_no_caller_asks_which_warehouse_it_has():
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if KIND_CHECK.search(line)
    ]
    assert not found, "ask the adapter (a capability flag or a hook), not its kind:\n" + "\n".join(found)


@pytest.mark.parametrize(
    "line",
    [
        'if kind == "duckdb":',
        "in_a_file = kind != 'bigquery'",
        'if warehouse.kind == "bigquery":',
        'if "bigquery" == settings_kind:',
        "if warehouse.kind in ('duckdb',):",
        "if isinstance(warehouse, BigQueryWarehouse):",
    ],
)
def test_the_check_sees_each_way_of_asking(line):
    assert KIND_CHECK.search(line)


def test_the_check_leaves_other_kinds_alone():
    assert not KIND_CHECK.search('if kind == "Season":')  # pages/gaps.py: a period picker
    assert not KIND_CHECK.search('if finding.kind == "stale":')  # backfill/watch.py: a finding's kind


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("data/warehouse.duckdb", ("duckdb", "data/warehouse.duckdb")),
        (":memory:", ("duckdb", ":memory:")),
        ("duckdb:///tmp/w.duckdb", ("duckdb", "/tmp/w.duckdb")),
        ("bigquery://demo-project", ("bigquery", "demo-project")),
    ],
)
def test_each_adapter_reads_its_own_urls(url, expected):
    assert parse_url(url) == expected


@pytest.mark.parametrize(
    "url", ["", "duckdb://", "bigquery://", "bigquery://p/x", "snowflake://acct", "s3://b/k"]
)
def test_malformed_or_unknown_urls_are_bad_input(url):
    with pytest.raises(BadInput):
        parse_url(url)


def test_every_registered_adapter_is_a_warehouse_with_its_error_data():
    for kind in ADAPTERS:
        adapter = adapter_class(kind)
        assert issubclass(adapter, Warehouse) and adapter.kind == kind
        assert adapter.ERRORS is not None and adapter.ERRORS.engine == kind


class MemoryWarehouse(Warehouse):
    """A third warehouse for the test: a module, a registry line, nothing else."""

    kind = "memo"
    dialect = "duckdb"

    @classmethod
    def parse_location(cls, url: str) -> str:
        return url.removeprefix("memo://")

    def __init__(self, settings: Settings, location: str):
        super().__init__(settings)
        self.location = location

    def name_ref(self, dataset: str, table: str) -> str:
        return table

    @property
    def url(self) -> str:
        return f"memo://{self.location}"

    def describe(self) -> str:
        return f"memo {self.location}"

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def _query(self, statements, params: dict, **options: Any) -> pd.DataFrame:
        return pd.DataFrame({"statement": list(statements)})

    def _execute(self, statements, params: dict, **options: Any) -> None:
        raise NotImplementedError

    def _create_dataset(self, dataset: str) -> None:
        raise NotImplementedError


def test_a_third_warehouse_is_one_module_and_one_registry_line(monkeypatch):
    module = types.ModuleType("memo_adapter")
    module.MemoryWarehouse = MemoryWarehouse
    monkeypatch.setitem(sys.modules, "memo_adapter", module)
    monkeypatch.setitem(ADAPTERS, "memo", "memo_adapter:MemoryWarehouse")

    warehouse = connect(Settings(), "memo://scratch")
    assert isinstance(warehouse, MemoryWarehouse) and warehouse.describe() == "memo scratch"
    assert warehouse.query("SELECT 1 AS one")["statement"].tolist() == ["SELECT 1 AS one"]


def test_reading_a_duckdb_url_loads_no_engine_pandas_or_sqlglot():
    # The CLI reads the URL before every command, ledger-only ones (runs) included.
    import subprocess

    code = (
        "import sys; from backfill.warehouse import parse_url; parse_url('data/warehouse.duckdb'); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'pandas', 'sqlglot', 'google'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- BigQuery's settings in their own section ------------------------------------------------------


def test_bigquery_settings_read_from_their_section_of_the_file(tmp_path):
    from backfill.config import load_settings

    path = tmp_path / "backfill.toml"
    path.write_text(
        'ok_pct = 98\n[bigquery]\nlocation = "EU"\nmaximum_bytes_billed = 1000\nquery_timeout_s = 30\n'
    )
    settings = load_settings({}, path)
    assert (settings.bigquery_location, settings.maximum_bytes_billed, settings.query_timeout_s) == (
        "EU",
        1000,
        30.0,
    )
    assert settings.ok_pct == 98


def test_flat_names_and_environment_names_still_work(tmp_path):
    from backfill.config import load_settings

    path = tmp_path / "backfill.toml"
    path.write_text('[backfill]\nbigquery_location = "EU"\n[backfill.bigquery]\nquery_timeout_s = 30\n')
    settings = load_settings({"BACKFILL_MAXIMUM_BYTES_BILLED": "7"}, path)
    assert (settings.bigquery_location, settings.maximum_bytes_billed, settings.query_timeout_s) == (
        "EU",
        7,
        30.0,
    )
    # The environment wins over the file, under the names it always had.
    assert (
        load_settings({"BACKFILL_BIGQUERY_LOCATION": "asia-northeast1"}, path).bigquery_location
        == "asia-northeast1"
    )


def test_an_unknown_key_of_the_section_is_bad_input(tmp_path):
    from backfill.config import load_settings

    path = tmp_path / "backfill.toml"
    path.write_text('[bigquery]\nregion = "EU"\n')
    with pytest.raises(BadInput, match=r"unknown setting \[bigquery\] region"):
        load_settings({}, path)
