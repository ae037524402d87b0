"""Every statement the backend sends, type-checked by GoogleSQL's own analyzer (ZetaSQL).

sqlglot parses what it can; BigQuery itself would also resolve every name and type. ZetaSQL, the
analyzer BigQuery is built on (PyPI ``zetasql``, a WASM build that runs offline), does that here.

How statements are collected: not by importing each SQL constant by name (stages and their SQL move
as the pipeline becomes data), but by recording what the backend really sends. The adapter's public
``Warehouse.query``/``execute`` (the outer boundary every caller goes through) are wrapped while the
CLI (every command of SPEC 4.7, a backfill, a dry run, a stale-row deletion) and the console's pages
run on a DuckDB demo; each recorded template is then rendered with BigQuery table references, as
the BigQuery adapter would send it, and analyzed statement by statement against the tables' schemas
(``backfill/warehouse/schema.py``) with the parameters typed as the adapter types them
(``query_parameter``). Temporary tables made by a script join the catalog for its later statements.
Statements of BigQuery's system procedures (``CALL BQ.*``), unknown to ZetaSQL, are allowed by name.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import types
from pathlib import Path

import pytest

try:
    import wasmtime
    import zetasql.core.wasm_client as zetasql_wasm
    from zetasql.api import Analyzer, CatalogBuilder, TableBuilder
    from zetasql.api.type_factory import TypeFactory
    from zetasql.types import (
        AnalyzerOptions,
        LanguageOptions,
        ProductMode,
        ResolvedCreateTableAsSelectStmt,
        TypeKind,
        ZetaSQLBuiltinFunctionOptions,
    )
except ImportError:
    if os.environ.get("CI"):
        raise  # CI must run these: requirements-dev.txt pins zetasql
    pytest.skip("zetasql is not installed: pip install -r requirements-dev.txt", allow_module_level=True)

from google.api_core.exceptions import MethodNotAllowed, NotFound
from streamlit.testing.v1 import AppTest

from backfill.cli.main import main
from backfill.config import Settings
from backfill.warehouse.base import Warehouse
from backfill.warehouse.bigquery import BigQueryWarehouse, query_parameter, used_params
from backfill.warehouse.schema import TABLES
from backfill.warehouse.sql import split_statements
from tests.builtin import PIPELINE

# GoogleSQL's analyzer (WASM) checks every statement recorded from a whole session.
pytestmark = pytest.mark.slow

APP = Path(__file__).resolve().parents[1] / "app.py"
PROJECT = "demo-project"
TODAY = dt.date(2026, 11, 27)

ALLOWED_PROCEDURES = re.compile(
    r"^\s*CALL\s+BQ\.(ABORT_SESSION|REFRESH_MATERIALIZED_VIEW)\s*\(", re.IGNORECASE
)
"""BigQuery system procedures ZetaSQL does not know; allowed by name, never analyzed."""

TYPE_KINDS = {
    "DATE": TypeKind.TYPE_DATE,
    "STRING": TypeKind.TYPE_STRING,
    "INT64": TypeKind.TYPE_INT64,
    "FLOAT64": TypeKind.TYPE_DOUBLE,
    "BOOL": TypeKind.TYPE_BOOL,
    "TIMESTAMP": TypeKind.TYPE_TIMESTAMP,
}
"""BigQuery type names (schema.py, query parameters) as ZetaSQL type kinds."""


# -- the analyzer --------------------------------------------------------------------------------


class _CachedConfig(wasmtime.Config):
    """wasmtime's compile cache on: compiling the 28 MB analyzer takes a minute, loading it 0.3 s."""

    def __init__(self):
        super().__init__()
        self.cache = True


zetasql_wasm.Config = _CachedConfig

LANGUAGE = LanguageOptions.maximum_features()
LANGUAGE.product_mode = ProductMode.PRODUCT_EXTERNAL  # BigQuery's type names (FLOAT64, no INT32)


def _type(bigquery_type: str):
    return TypeFactory.create_simple_type(TYPE_KINDS[bigquery_type])


def _parameter_type(name: str, value):
    """The ZetaSQL type of a parameter, from the type the BigQuery adapter would send."""
    param = query_parameter(name, value)
    if hasattr(param, "array_type"):
        return TypeFactory.create_array_type(_type(param.array_type))
    return _type(param.type_)


class GoogleSQL:
    """ZetaSQL with the three tables (as the BigQuery adapter names them) and any temp tables."""

    def __init__(self, warehouse: BigQueryWarehouse):
        self.tables = {
            warehouse.table_ref(table).strip("`"): [(name, _type(kind)) for name, kind in table.columns]
            for table in TABLES.values()
        }

    def analyze_script(self, sql: str, params: dict) -> list[str]:
        """Analyze each statement of a (rendered) script; returns the resolved statement kinds."""
        temp_tables: dict[str, list] = {}
        kinds = []
        for statement in split_statements(sql):
            if ALLOWED_PROCEDURES.match(statement):
                kinds.append("allowed procedure")
                continue
            resolved = self._analyzer(temp_tables, used_params(statement, params)).analyze_statement(
                statement
            )
            kinds.append(type(resolved).__name__)
            if isinstance(resolved, ResolvedCreateTableAsSelectStmt):
                name = ".".join(resolved.name_path)
                temp_tables[name] = [(column.name, column.type) for column in resolved.column_definition_list]
        return kinds

    def _analyzer(self, temp_tables: dict[str, list], params: dict) -> Analyzer:
        catalog = CatalogBuilder("bigquery")
        for name, columns in {**self.tables, **temp_tables}.items():
            table = TableBuilder(name)
            for column, kind in columns:
                table.add_column(column, kind)
            catalog.add_table(table.build())
        catalog.with_builtin_functions(ZetaSQLBuiltinFunctionOptions(language_options=LANGUAGE))
        options = AnalyzerOptions(language_options=LANGUAGE)
        for name, value in params.items():
            options.query_parameters.append(
                AnalyzerOptions.QueryParameter(name=name, type=_parameter_type(name, value))
            )
        return Analyzer(options, catalog.build())


@pytest.fixture(scope="module")
def bigquery_warehouse() -> BigQueryWarehouse:
    """The BigQuery adapter, only to render templates as it sends them (its client is never used)."""
    return BigQueryWarehouse(Settings(), PROJECT, client=object(), scripts_bind_parameters=True)


@pytest.fixture(scope="module")
def googlesql(bigquery_warehouse) -> GoogleSQL:
    return GoogleSQL(bigquery_warehouse)


# -- what the backend sends --------------------------------------------------------------------


@pytest.fixture(scope="module")
def sent(tmp_path_factory) -> dict[tuple[str, frozenset], dict]:
    """Every distinct (template, parameter names) the backend sends while the CLI and the console
    do their work on a DuckDB demo, with the parameters of its first sending."""
    workdir = tmp_path_factory.mktemp("googlesql")
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": str(workdir / "warehouse.duckdb"),
        "BACKFILL_LEDGER": str(workdir / "ledger.sqlite"),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
        "BACKFILL_USER": "googlesql-tester",
    }
    recorded: dict[tuple[str, frozenset], dict] = {}
    real_query, real_execute = Warehouse.query, Warehouse.execute

    def record(template: str, params) -> None:
        recorded.setdefault((template, frozenset(params or {})), dict(params or {}))

    def query(self, template, params=None, **options):
        record(template, params)
        return real_query(self, template, params, **options)

    def execute(self, template, params=None, **options):
        record(template, params)
        return real_execute(self, template, params, **options)

    reads = [
        ["demo", "--seed", "7"],
        ["coverage", "--by", "month"],
        ["coverage", "--by", "date", "--start", "2021-12-01", "--end", "2021-12-31", "--format", "json"],
        ["gaps", "--start", "2021-11-01", "--end", "2021-12-31", "--output", str(workdir / "gaps.md")],
        ["stale", "--start", "2021-12-01", "--end", "2021-12-31"],
        ["run", "--dates", "2021-12-09", "--stages", "predictions"],  # blocked by the gate
        ["run", "--start", "2021-12-01", "--end", "2021-12-31", "--dry-run"],
    ]
    writes = [
        ["run", "--start", "2021-12-01", "--end", "2021-12-15"],
        ["stale", "--start", "2021-12-16", "--end", "2021-12-31", "--delete", "--yes"],
    ]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Warehouse, "query", query)
        patch.setattr(Warehouse, "execute", execute)
        for argv in reads:
            assert main(argv, environ=environ, today=lambda: TODAY) in (0, 1), argv
        # The console's own reads while the incident is still there: headline figures, the
        # coverage snapshot, a date's drill-down, stale-row previews of both tables.
        for name in [name for name in os.environ if name.startswith("BACKFILL_")]:
            patch.delenv(name)
        for name, value in environ.items():
            patch.setenv(name, value)
        at = AppTest.from_file(str(APP), default_timeout=60)
        at.run()
        assert not at.exception
        at.query_params["date"] = "2021-12-09"
        at.switch_page("pages/coverage.py").run()
        assert not at.exception
        at.query_params.clear()
        at.switch_page("pages/gaps.py").run()
        assert not at.exception
        (tables,) = [widget for widget in at.button_group if widget.key == "gaps_preview_table"]
        tables.set_value("mlfs").run()
        assert not at.exception
        for argv in writes:
            assert main(argv, environ=environ, today=lambda: TODAY) in (0, 1), argv
    return recorded


def test_the_recording_saw_every_kind_of_work(sent, bigquery_warehouse):
    # Not a list of constants: only that each kind of work was recorded at all.
    rendered = [bigquery_warehouse.prepare(template)[0] for template, _ in sent]
    for stage in PIPELINE.backfillable:
        ref = bigquery_warehouse.stage_ref(stage)
        assert any("BEGIN TRANSACTION" in sql and f"INSERT INTO {ref}" in sql for sql in rendered), stage.name
        assert any(sql.lstrip().startswith("DELETE") or f"DELETE FROM {ref}" in sql for sql in rendered)
    assert any("FARM_FINGERPRINT" in sql for sql in rendered)  # the console's change fingerprints
    previews = {sql for sql in rendered if "LIMIT @limit" in sql}  # the Gaps page's stale-row previews
    assert len(previews) == len(PIPELINE.backfillable)  # one per written table
    assert len(sent) >= 15


def test_every_statement_the_backend_sends_is_valid_googlesql(sent, googlesql, bigquery_warehouse):
    failures = []
    analyzed = 0
    for (template, _), params in sent.items():
        (sql,) = bigquery_warehouse.prepare(template)
        try:
            analyzed += len(googlesql.analyze_script(sql, params))
        except Exception as exc:  # noqa: BLE001 - every failure is reported at once
            failures.append(f"{exc}\n--- in ---\n{sql}\n--- with {sorted(params)}")
    assert not failures, "\n\n".join(failures)
    assert analyzed >= len(sent)


# -- the analyzer can fail -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "params", "error"),
    [
        ("SELECT player_lookup FROM {pgs} WHERE game_date = @day", {"day": 3}, "No matching signature"),
        ("SELECT no_such_column FROM {mlfs}", {}, "Unrecognized name"),
        ("SELECT * FROM {pgs} WHERE game_date IN UNNEST(@dates)", {"dates": [3, 4]}, "DATE"),
        ("SELECT 1 FROM `demo-project.nba_analytics.no_such_table`", {}, "Table not found"),
    ],
    ids=["parameter-type", "column", "array-element-type", "table"],
)
def test_the_analyzer_rejects_what_bigquery_would(template, params, error, googlesql, bigquery_warehouse):
    (sql,) = bigquery_warehouse.prepare(template)
    with pytest.raises(Exception, match=error):
        googlesql.analyze_script(sql, params)


def test_system_procedures_are_allowed_by_name_only(googlesql):
    assert googlesql.analyze_script("CALL BQ.ABORT_SESSION()", {}) == ["allowed procedure"]
    with pytest.raises(Exception, match="Procedure not found"):
        googlesql.analyze_script("CALL BQ.DROP_EVERYTHING()", {})


def test_a_temp_table_made_by_a_script_is_known_to_its_later_statements(googlesql, bigquery_warehouse):
    (sql,) = bigquery_warehouse.prepare(
        "CREATE TEMP TABLE keep AS SELECT game_date, player_lookup FROM {pgs} WHERE game_date IN UNNEST(@dates);\n"
        "SELECT COUNT(*) AS n FROM keep WHERE game_date = @day;\nDROP TABLE keep;"
    )
    kinds = googlesql.analyze_script(sql, {"dates": [dt.date(2021, 12, 7)], "day": dt.date(2021, 12, 7)})
    assert kinds == ["ResolvedCreateTableAsSelectStmt", "ResolvedQueryStmt", "ResolvedDropStmt"]


class _RecordingClient:
    """The BigQuery client's outer boundary, for what only the BigQuery adapter sends (its DDL, the
    doctor's dry runs): records each query and runs nothing; no dataset exists yet."""

    def __init__(self):
        self.sent: list[tuple[str, dict]] = []

    def query(self, sql, job_config=None, **kwargs):
        params = {
            p.name: p.values if hasattr(p, "array_type") else p.value for p in job_config.query_parameters
        }
        self.sent.append((sql, params))
        return types.SimpleNamespace(
            job_id=kwargs.get("job_id"),
            state="DONE",
            error_result=None,
            total_bytes_processed=0,
            result=lambda **_: None,
        )

    def get_dataset(self, *args, **kwargs):
        raise NotFound("no dataset yet")

    def test_iam_permissions(self, *args, **kwargs):
        # Not answered (as on the emulator): the doctor's dry-run DELETE decides instead.
        raise MethodNotAllowed("tables.testIamPermissions is not served here")

    def create_dataset(self, *args, **kwargs):
        return None


def test_what_only_the_bigquery_adapter_sends_is_valid_googlesql(googlesql):
    client = _RecordingClient()
    warehouse = BigQueryWarehouse(Settings(), PROJECT, client=client, scripts_bind_parameters=True)
    warehouse.create_schema()  # tables partitioned and clustered
    for dataset in sorted(set(Settings().datasets.values())):
        googlesql.tables[f"{PROJECT}.{dataset}.INFORMATION_SCHEMA.PARTITIONS"] = [
            (name, _type(kind)) for name, kind in PARTITIONS_VIEW
        ]
    checks = list(warehouse._permission_checks())  # the doctor's dry runs
    assert [check.status for check in checks] == ["ok"] * len(checks)
    ddl = [sql for sql, _ in client.sent if sql.startswith("CREATE TABLE")]
    assert len(ddl) == len(TABLES) and all(
        "PARTITION BY game_date CLUSTER BY player_lookup" in sql for sql in ddl
    )
    assert len(client.sent) == len(TABLES) + len(checks)
    for sql, params in client.sent:
        googlesql.analyze_script(sql, params)


PARTITIONS_VIEW = [
    ("table_catalog", "STRING"),
    ("table_schema", "STRING"),
    ("table_name", "STRING"),
    ("partition_id", "STRING"),
    ("total_rows", "INT64"),
    ("last_modified_time", "TIMESTAMP"),
]
"""The columns of BigQuery's INFORMATION_SCHEMA.PARTITIONS view that the adapter reads (and more)."""


def test_the_partitions_metadata_query_is_valid_googlesql(googlesql, bigquery_warehouse):
    datasets = sorted(set(bigquery_warehouse.settings.datasets.values()))
    for dataset in datasets:
        googlesql.tables[f"{PROJECT}.{dataset}.INFORMATION_SCHEMA.PARTITIONS"] = [
            (name, _type(kind)) for name, kind in PARTITIONS_VIEW
        ]
    (sql,) = bigquery_warehouse.prepare(bigquery_warehouse.partitions_sql(datasets))
    params = {"first": "20211201", "last": "20211231"} | {
        f"tables_{number}": ["player_game_summary"] for number in range(len(datasets))
    }
    assert googlesql.analyze_script(sql, params) == ["ResolvedQueryStmt"]


def test_the_partition_bounds_query_is_valid_googlesql(googlesql, bigquery_warehouse):
    from backfill.warehouse.bigquery import partition_bounds_sql

    dataset = bigquery_warehouse.settings.analytics_dataset
    view = f"{PROJECT}.{dataset}.INFORMATION_SCHEMA.PARTITIONS"
    googlesql.tables[view] = [(name, _type(kind)) for name, kind in PARTITIONS_VIEW]
    (sql,) = bigquery_warehouse.prepare(
        partition_bounds_sql(bigquery_warehouse.name_ref(dataset, "INFORMATION_SCHEMA.PARTITIONS"))
    )
    params = {"table": "player_game_summary", "first": "00000000", "last": "99999999"}
    assert googlesql.analyze_script(sql, params) == ["ResolvedQueryStmt"]


def test_smokes_independent_counts_are_valid_googlesql(googlesql, bigquery_warehouse):
    from backfill import smoke

    params = {"d": dt.date(2021, 12, 7), "season_start": dt.date(2021, 10, 19), "min_history": 3}
    templates = [smoke.played_sql(PIPELINE), smoke.eligible_sql(PIPELINE)]
    templates += [smoke.rows_sql(stage) for stage in PIPELINE.backfillable]
    for template in templates:
        (sql,) = bigquery_warehouse.prepare(template)
        assert googlesql.analyze_script(sql, params) == ["ResolvedQueryStmt"], template
