"""The BigQuery adapter at the SQL level, with no server: what it would send, and how.

A fake client stands in for ``google.cloud.bigquery.Client``; it records every call and answers
queries with empty result sets shaped like the statement's SELECT list, so the real backend
functions (coverage, stale rows, the demo builder) can run through the adapter and the exact SQL
and job configuration they send can be checked. Nothing here opens a socket.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import io
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import sqlglot
from google.api_core.exceptions import (
    BadRequest,
    Forbidden,
    InternalServerError,
    NotFound,
    ServiceUnavailable,
)
from google.cloud import bigquery
from google.cloud.bigquery.job.base import SessionInfo
from google.cloud.bigquery.retry import DEFAULT_RETRY
from sqlglot import exp
from sqlglot.errors import ErrorLevel
from sqlglot.optimizer.qualify import qualify

from backfill import coverage, demo, stale
from backfill.config import Settings
from backfill.errors import BadInput, WarehouseRefused
from backfill.faults import PERMANENT, classify
from backfill.processors import predictions
from backfill.warehouse import connect, parse_url
from backfill.warehouse.base import param_names
from backfill.warehouse.bigquery import (
    EMULATOR_ENV,
    JOB_TIMEOUT_GRACE_S,
    POLL_DEADLINE_S,
    REATTACH_ATTEMPTS,
    BigQueryWarehouse,
    query_parameter,
)
from backfill.warehouse.schema import PLAYER_GAME_SUMMARY, TABLES
from tests.builtin import (
    DAILY_SQL,
    MONTHLY_PLAYERS_SQL,
    PIPELINE,
    STAGES,
    STALE_COUNTS_SQL,
    STALE_DELETE_SQL,
    STALE_FLAGGED,
    replace_params,
    replace_script,
)

REPO = Path(__file__).resolve().parents[1]
PROJECT = "demo-project"


# -- a fake client ---------------------------------------------------------------------------


class FakeRowIterator:
    """What ``QueryJob.result()`` returns: rows as a DataFrame, and the result schema."""

    def __init__(self, frame: pd.DataFrame, schema: list[bigquery.SchemaField]):
        self.frame = frame
        self.schema = schema
        self.to_dataframe_calls: list[dict] = []

    def to_dataframe(self, **kwargs) -> pd.DataFrame:
        self.to_dataframe_calls.append(kwargs)
        return self.frame.copy()


class FakeJob:
    """A job that has run; ``poll_failures`` are raised by its first ``result`` calls (the wait
    failed, not the job), ``error`` makes the job itself fail."""

    def __init__(
        self,
        rows: FakeRowIterator,
        total_bytes_processed: int = 0,
        session_id: str | None = None,
        job_id: str = "job",
        location: str | None = None,
        error: Exception | None = None,
    ):
        self.rows = rows
        self.total_bytes_processed = total_bytes_processed
        self.session_info = SessionInfo({"sessionId": session_id}) if session_id else None
        self.job_id = job_id
        self.project = PROJECT
        self.location = location
        self.state = "RUNNING"
        self.error = error
        self.poll_failures: list[Exception] = []
        self.result_calls: list[dict] = []

    @property
    def error_result(self):
        return {"reason": self.error.errors[0]["reason"]} if self.error and self.state == "DONE" else None

    def result(self, **kwargs) -> FakeRowIterator:
        self.result_calls.append(kwargs)
        if self.poll_failures:
            raise self.poll_failures.pop(0)
        self.state = "DONE"
        if self.error is not None:
            raise self.error
        return self.rows


class FakeClient:
    """Records ``query``, ``create_dataset`` and ``load_table_from_file`` calls; never dials out.

    ``answers`` maps a substring of a statement to the (frame, schema) to return for it; any other
    statement gets no rows, with the columns its outermost SELECT names.
    """

    def __init__(self, answers: dict[str, tuple[pd.DataFrame, list[bigquery.SchemaField]]] | None = None):
        self.answers = answers or {}
        self.failures: dict[str, Exception] = {}
        """A statement containing a key fails with its exception."""
        self.queries: list[dict] = []
        self.jobs: list[FakeJob] = []
        self.datasets: list[dict] = []
        self.loads: list[dict] = []
        self.tables: dict[str, dict[str, str]] = {}
        """Tables that exist, by full id, with their labels."""
        self.table_updates: list[dict] = []
        self.dataset_locations: dict[str, str] = {}
        """Datasets that exist, by id, with their location."""
        self.metadata_calls: list[tuple[str, str]] = []
        self.poll_failures: dict[str, list[Exception]] = {}
        """The jobs of a statement containing a key fail these polls first."""
        self.job_failures: dict[str, Exception] = {}
        """The jobs of a statement containing a key run and fail with the exception."""
        self.closed = False

    def query(self, sql: str, **kwargs) -> FakeJob:
        # As the client does: a whole job_id as given, else the prefix and a new uuid per insert.
        kwargs.setdefault("job_id", None)
        kwargs["job_id"] = kwargs["job_id"] or f"{kwargs.get('job_id_prefix') or ''}{uuid.uuid4()}"
        self.queries.append({"sql": sql, **kwargs})
        for needle, error in self.failures.items():
            if needle in sql:
                raise error
        frame, schema = self._answer(sql)
        config = kwargs.get("job_config")
        session_id = f"session-{len(self.queries)}" if config is not None and config.create_session else None
        job = FakeJob(
            FakeRowIterator(frame, schema),
            total_bytes_processed=12345,
            session_id=session_id,
            job_id=kwargs["job_id"],
            location=kwargs.get("location"),
            error=next((e for needle, e in self.job_failures.items() if needle in sql), None),
        )
        for needle, errors in self.poll_failures.items():
            if needle in sql:
                job.poll_failures = errors
        self.jobs.append(job)
        return job

    def get_job(self, job_id: str, **kwargs) -> FakeJob:
        self.metadata_calls.append(("get_job", job_id))
        return next(job for job in self.jobs if job.job_id == job_id)

    def get_dataset(self, dataset_id: str, **kwargs):
        self.metadata_calls.append(("get_dataset", dataset_id))
        if dataset_id not in self.dataset_locations:
            raise NotFound(f"Not found: Dataset {dataset_id}")
        dataset = bigquery.Dataset(dataset_id)
        dataset.location = self.dataset_locations[dataset_id]
        return dataset

    def _answer(self, sql: str):
        for needle, answer in self.answers.items():
            if needle in sql:
                return answer
        return pd.DataFrame({name: [] for name in _output_columns(sql)}), []

    def create_dataset(self, dataset, **kwargs):
        self.datasets.append({"dataset": dataset, **kwargs})
        return dataset

    def get_table(self, table_id: str, **kwargs):
        if table_id not in self.tables:
            raise NotFound(f"Not found: Table {table_id}")
        table = bigquery.Table(table_id)
        table.labels = dict(self.tables[table_id])
        return table

    def update_table(self, table, fields, **kwargs):
        self.table_updates.append(
            {"table": table.reference, "fields": fields, "labels": table.labels, **kwargs}
        )
        self.tables[f"{table.project}.{table.dataset_id}.{table.table_id}"] = dict(table.labels)
        return table

    def load_table_from_file(self, file_obj, destination, **kwargs) -> FakeJob:
        self.loads.append({"data": file_obj.read(), "destination": destination, **kwargs})
        job = FakeJob(FakeRowIterator(pd.DataFrame(), []), job_id=f"{kwargs.get('job_id_prefix') or ''}load")
        self.jobs.append(job)
        return job

    def close(self) -> None:
        self.closed = True

    @property
    def sent(self) -> list[str]:
        return [call["sql"] for call in self.queries]


def _output_columns(sql: str) -> list[str]:
    """Column names a script's last statement returns; stars are expanded from the table schemas."""
    statement = sqlglot.parse(sql, read="bigquery")[-1]
    if not isinstance(statement, exp.Query):
        return []
    with contextlib.suppress(sqlglot.errors.SqlglotError):
        statement = qualify(statement, dialect="bigquery", schema=_SCHEMA, validate_qualify_columns=False)
    return [name for name in statement.named_selects if name != "*"]


_SCHEMA = {
    PROJECT: {Settings().datasets[table.role]: {table.name: dict(table.columns)} for table in TABLES.values()}
}


@pytest.fixture
def bq_settings() -> Settings:
    return Settings(warehouse=f"bigquery://{PROJECT}")


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


@pytest.fixture
def warehouse(bq_settings, client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(bq_settings, PROJECT, client=client)


def parse_bigquery(sql: str) -> list[exp.Expression]:
    """Every statement of ``sql`` parsed as GoogleSQL; any syntax error raises."""
    statements = sqlglot.parse(sql, read="bigquery", error_level=ErrorLevel.RAISE)
    assert statements and all(statement is not None for statement in statements)
    return statements


def parameters(call: dict) -> dict[str, bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter]:
    return {param.name: param for param in call["job_config"].query_parameters}


# -- query parameters ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "bigquery_type"),
    [
        (dt.date(2021, 12, 7), "DATE"),
        (dt.datetime(2022, 7, 1, 3, 0, tzinfo=dt.UTC), "TIMESTAMP"),
        (3, "INT64"),
        (90.0, "FLOAT64"),
        (True, "BOOL"),
        (False, "BOOL"),
        ("features_v3", "STRING"),
        (None, "STRING"),
    ],
)
def test_scalar_parameter_is_typed_from_the_python_value(value, bigquery_type):
    param = query_parameter("p", value)
    assert isinstance(param, bigquery.ScalarQueryParameter)
    assert (param.name, param.type_, param.value) == ("p", bigquery_type, value)


def test_list_of_dates_becomes_an_array_of_date_parameter():
    dates = [dt.date(2021, 12, 7), dt.date(2021, 12, 9)]
    param = query_parameter("dates", dates)
    assert isinstance(param, bigquery.ArrayQueryParameter)
    assert (param.name, param.array_type, param.values) == ("dates", "DATE", dates)
    assert param.to_api_repr()["parameterType"] == {"type": "ARRAY", "arrayType": {"type": "DATE"}}


def test_list_of_strings_becomes_an_array_of_string_parameter():
    param = query_parameter("systems", ("weighted_form", "minutes_rate"))
    assert (param.array_type, param.values) == ("STRING", ["weighted_form", "minutes_rate"])


def test_empty_list_still_makes_a_typed_array_parameter():
    param = query_parameter("keep", [])
    assert (param.array_type, param.values) == ("STRING", [])


def test_value_without_a_bigquery_type_is_refused():
    with pytest.raises(TypeError, match="no BigQuery parameter type for dict"):
        query_parameter("p", {"a": 1})


# -- table references and names --------------------------------------------------------------


def test_table_reference_is_quoted_project_dataset_table(warehouse):
    assert warehouse.table_ref(PLAYER_GAME_SUMMARY) == f"`{PROJECT}.nba_analytics.player_game_summary`"
    refs = warehouse.table_refs()
    assert refs["pgs"] == refs["player_game_summary"]
    assert refs["mlfs"] == f"`{PROJECT}.nba_precompute.ml_feature_store`"
    assert refs["pred"] == f"`{PROJECT}.nba_predictions.player_prop_predictions`"


def test_configured_dataset_names_are_used_in_references(client):
    settings = Settings(precompute_dataset="staging_precompute")
    warehouse = BigQueryWarehouse(settings, PROJECT, client=client)
    assert warehouse.table_refs()["mlfs"] == f"`{PROJECT}.staging_precompute.ml_feature_store`"


@pytest.mark.parametrize(
    "dataset", ["nba-analytics", "nba analytics", "nba`; DROP TABLE x; --", "nba.analytics", "", "9lives"]
)
def test_dataset_name_that_is_not_a_plain_identifier_is_bad_input(dataset, client):
    with pytest.raises(BadInput, match="not a plain identifier"):
        BigQueryWarehouse(Settings(analytics_dataset=dataset), PROJECT, client=client)
    assert client.queries == [] and client.datasets == []


@pytest.mark.parametrize(
    "project", ["Demo-Project", "demo_project", "demo project", "demo`project", "-demo", "demo-", "d", ""]
)
def test_invalid_project_id_is_bad_input(project, client):
    with pytest.raises(BadInput, match="not a valid project id"):
        BigQueryWarehouse(Settings(), project, client=client)
    assert client.queries == []


def test_bigquery_url_with_invalid_project_is_bad_input():
    assert parse_url("bigquery://demo-project") == ("bigquery", "demo-project")
    with pytest.raises(BadInput):
        parse_url("bigquery://Demo_Project")
    with pytest.raises(BadInput):
        parse_url("bigquery://demo-project/nba_analytics")


# -- DDL ---------------------------------------------------------------------------------------


def test_create_schema_creates_datasets_in_the_location_then_partitioned_clustered_tables(warehouse, client):
    warehouse.create_schema()

    created = [(call["dataset"].dataset_id, call["dataset"].project) for call in client.datasets]
    assert created == [(name, PROJECT) for name in ("nba_analytics", "nba_precompute", "nba_predictions")]
    assert all(call["dataset"].location == "US" for call in client.datasets)
    assert all(call["exists_ok"] is True and call["retry"] is DEFAULT_RETRY for call in client.datasets)

    assert len(client.queries) == len(TABLES)
    for call, table in zip(client.queries, TABLES.values(), strict=True):
        ddl = call["sql"]
        assert ddl.startswith(f"CREATE TABLE IF NOT EXISTS {warehouse.table_ref(table)} (")
        assert ddl.endswith(") PARTITION BY game_date CLUSTER BY player_lookup")
        (statement,) = parse_bigquery(ddl)
        assert isinstance(statement, exp.Create)
        assert [column.name for column in statement.find_all(exp.ColumnDef)] == list(table.column_names)
        assert statement.find(exp.PartitionedByProperty) is not None
        assert statement.find(exp.ClusterProperty) is not None
    assert warehouse.statements_issued == len(TABLES) + 3


def test_drop_tables_sends_one_drop_per_table(warehouse, client):
    warehouse.drop_tables()
    assert client.sent == [f"DROP TABLE IF EXISTS {warehouse.table_ref(t)}" for t in TABLES.values()]


# -- job configuration -------------------------------------------------------------------------


def test_job_config_carries_parameters_labels_and_the_bytes_billed_guard(warehouse, bq_settings):
    config = warehouse.job_config(
        {"start": dt.date(2021, 12, 1), "min_history_games": 3},
        labels={"stage": "MLFS", "run_id": "Run 42/Dec", "operator": "a.b@example.com"},
    )
    assert isinstance(config, bigquery.QueryJobConfig)
    assert [(p.name, p.type_, p.value) for p in config.query_parameters] == [
        ("start", "DATE", dt.date(2021, 12, 1)),
        ("min_history_games", "INT64", 3),
    ]
    assert config.labels == {
        "app": "nba-backfill",
        "stage": "mlfs",
        "run_id": "run-42-dec",
        "operator": "a-b-example-com",
    }
    assert config.maximum_bytes_billed == bq_settings.maximum_bytes_billed == 50 * 1024**3
    assert int(config.job_timeout_ms) == bq_settings.query_timeout_s * 1000  # the client keeps it as text
    assert not config.dry_run
    assert config.use_query_cache is True
    assert not config.create_session and config.connection_properties == []


def test_label_values_are_cut_to_63_characters(warehouse):
    config = warehouse.job_config({}, labels={"note": "x" * 100})
    assert config.labels == {"app": "nba-backfill", "note": "x" * 63}


def test_zero_maximum_bytes_billed_means_no_guard(client):
    warehouse = BigQueryWarehouse(Settings(maximum_bytes_billed=0), PROJECT, client=client)
    config = warehouse.job_config({})
    assert config.maximum_bytes_billed is None
    assert "maximumBytesBilled" not in config.to_api_repr()["query"]


def test_configured_guard_and_timeout_reach_the_job(client):
    warehouse = BigQueryWarehouse(
        Settings(maximum_bytes_billed=10**9, query_timeout_s=42.5), PROJECT, client=client
    )
    warehouse.query("SELECT 1 AS one")
    (call,) = client.queries
    assert call["job_config"].maximum_bytes_billed == 10**9
    assert int(call["job_config"].job_timeout_ms) == 42500
    assert call["timeout"] == 42.5
    # One rule: the client waits for the job a grace longer than BigQuery lets it run, and each
    # wait's API calls are retried for POLL_DEADLINE_S at most.
    ((result_call),) = client.jobs[0].result_calls
    assert result_call["timeout"] == 42.5 + JOB_TIMEOUT_GRACE_S and result_call["job_retry"] is None
    assert result_call["retry"]._timeout == POLL_DEADLINE_S == 60.0
    assert result_call["retry"]._predicate is DEFAULT_RETRY._predicate


def test_dry_run_job_config_skips_the_cache(warehouse):
    config = warehouse.job_config({}, dry_run=True)
    assert config.dry_run is True
    assert config.use_query_cache is False
    assert config.job_timeout_ms is None


# -- what query and execute send -----------------------------------------------------------------


def test_query_sends_the_googlesql_unchanged_with_parameters_and_no_client_job_retry(warehouse, client):
    day = dt.date(2021, 12, 9)
    warehouse.query("SELECT player_lookup FROM {mlfs} WHERE game_date = @d", {"d": day}, labels={"page": "x"})

    (call,) = client.queries
    assert call["sql"] == f"SELECT player_lookup FROM {warehouse.table_refs()['mlfs']} WHERE game_date = @d"
    # API calls keep the client's bounded DEFAULT_RETRY; the job itself is never re-run by it.
    assert call["retry"] is DEFAULT_RETRY
    assert call["job_retry"] is None
    assert call["timeout"] == warehouse.settings.query_timeout_s
    assert [(p.name, p.type_, p.value) for p in call["job_config"].query_parameters] == [("d", "DATE", day)]
    assert call["job_config"].labels == {"app": "nba-backfill", "page": "x"}
    (job,) = client.jobs
    ((result_call),) = job.result_calls
    assert result_call["job_retry"] is None
    assert result_call["timeout"] == warehouse.settings.query_timeout_s + JOB_TIMEOUT_GRACE_S


def test_query_reads_rows_over_rest_without_the_storage_api(warehouse, client):
    warehouse.query("SELECT 1 AS one")
    (job,) = client.jobs
    assert job.rows.to_dataframe_calls == [{"create_bqstorage_client": False}]


def test_query_returns_date_columns_as_python_dates(bq_settings, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    frame = pd.DataFrame(
        {
            "game_date": pd.to_datetime(["2021-12-07", "2021-12-09"]),
            "players_total": [120, 118],
        }
    )
    schema = [bigquery.SchemaField("game_date", "DATE"), bigquery.SchemaField("players_total", "INTEGER")]
    client = FakeClient({"players_total": (frame, schema)})
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client)

    result = warehouse.query("SELECT game_date, COUNT(*) AS players_total FROM {pgs} GROUP BY game_date")

    assert result["game_date"].tolist() == [dt.date(2021, 12, 7), dt.date(2021, 12, 9)]
    assert result["players_total"].tolist() == [120, 118]


@pytest.mark.parametrize("stage", STAGES)
def test_replace_script_is_sent_whole_as_one_job_with_typed_parameters(warehouse, client, bq_settings, stage):
    dates = [dt.date(2021, 12, 9), dt.date(2021, 12, 7)]
    now = dt.datetime(2022, 7, 1, 3, 0, tzinfo=dt.UTC)
    warehouse.execute(replace_script(stage), replace_params(stage, dates, bq_settings, now))

    (call,) = client.queries
    assert call["sql"] == warehouse.prepare(replace_script(stage))[0]
    assert call["sql"].startswith("BEGIN TRANSACTION;") and call["sql"].endswith("COMMIT TRANSACTION;")
    assert (call["retry"], call["job_retry"]) == (DEFAULT_RETRY, None)
    params = parameters(call)
    assert (params["dates"].array_type, params["dates"].values) == ("DATE", sorted(dates))
    assert params["processed_at"].type_ == "TIMESTAMP"
    assert param_names(call["sql"]) == set(params)
    assert warehouse.statements_issued == 1


def test_only_the_parameters_a_statement_uses_are_sent(warehouse, client):
    warehouse.query(
        "SELECT player_lookup FROM {mlfs} WHERE game_date = @d",
        {"d": dt.date(2021, 12, 9), "unused": 3, "also_unused": ["a"]},
    )
    warehouse.execute("DELETE FROM {mlfs} WHERE TRUE", {"d": dt.date(2021, 12, 9)})
    assert list(parameters(client.queries[0])) == ["d"]
    assert parameters(client.queries[1]) == {}


def test_estimate_bytes_is_a_dry_run_without_client_job_retry(warehouse, client):
    assert (
        warehouse.estimate_bytes(
            "SELECT * FROM {pgs} WHERE game_date = @d", {"d": dt.date(2021, 12, 7), "x": 1}
        )
        == 12345
    )
    (call,) = client.queries
    assert call["job_config"].dry_run is True
    assert list(parameters(call)) == ["d"]
    assert (call["retry"], call["job_retry"]) == (DEFAULT_RETRY, None)
    assert warehouse.statements_issued == 1


def test_estimate_bytes_turns_off_the_clients_job_retry(warehouse, client):
    warehouse.estimate_bytes("SELECT 1 AS one")
    (call,) = client.queries
    assert call.get("job_retry", "client default") is None


def test_estimate_of_a_script_sums_a_dry_run_of_each_statement(warehouse, client, bq_settings):
    dates = [dt.date(2021, 12, 7)]
    params = replace_params("mlfs", dates, bq_settings, dt.datetime(2022, 7, 1, tzinfo=dt.UTC))
    assert warehouse.estimate_bytes(replace_script("mlfs"), params) == 2 * 12345
    assert [call["sql"].split()[0] for call in client.queries] == ["DELETE", "INSERT"]
    assert all(call["job_config"].dry_run for call in client.queries)
    assert [set(parameters(call)) for call in client.queries] == [
        param_names(c["sql"]) for c in client.queries
    ]


def test_estimate_of_a_bad_statement_raises_the_clients_error(warehouse, client):
    client.failures["SELEC "] = BadRequest("Syntax error")
    with pytest.raises(BadRequest):
        warehouse.estimate_bytes("SELEC 1")


# -- scripts where the endpoint cannot bind their parameters: one job per statement in a session ---


@pytest.fixture
def session_warehouse(bq_settings, client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(bq_settings, PROJECT, client=client, scripts_bind_parameters=False)


def test_scripts_bind_parameters_except_on_the_emulator(bq_settings, client, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    assert BigQueryWarehouse(bq_settings, PROJECT, client=client).scripts_bind_parameters is True
    monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9050")
    assert BigQueryWarehouse(bq_settings, PROJECT, client=client).scripts_bind_parameters is False


@pytest.mark.parametrize("stage", STAGES)
def test_replace_runs_as_a_transaction_of_jobs_in_one_session(session_warehouse, client, bq_settings, stage):
    dates = [dt.date(2021, 12, 7), dt.date(2021, 12, 9)]
    now = dt.datetime(2022, 7, 1, 3, 0, tzinfo=dt.UTC)
    session_warehouse.execute(
        replace_script(stage), replace_params(stage, dates, bq_settings, now), labels={"stage": stage}
    )

    assert [call["sql"].split()[0] for call in client.queries] == ["BEGIN", "DELETE", "INSERT", "COMMIT"]
    first, *rest = client.queries
    assert first["job_config"].create_session is True and first["job_config"].connection_properties == []
    for call in rest:
        assert not call["job_config"].create_session
        (prop,) = call["job_config"].connection_properties
        assert (prop.key, prop.value) == ("session_id", "session-1")
    for call in client.queries:
        assert set(parameters(call)) == param_names(call["sql"])
        assert (call["retry"], call["job_retry"]) == (DEFAULT_RETRY, None)
        assert call["job_config"].labels == {"app": "nba-backfill", "stage": stage}
    assert parameters(client.queries[1])["dates"].values == dates
    # Each job is a statement issued: this is what a run's statement count reports on BigQuery.
    assert session_warehouse.statements_issued == 4


def test_a_failure_after_the_delete_rolls_the_session_back(session_warehouse, client, bq_settings):
    client.failures["INSERT INTO"] = ServiceUnavailable("backend went away")
    params = replace_params(
        "mlfs", [dt.date(2021, 12, 7)], bq_settings, dt.datetime(2022, 7, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(ServiceUnavailable):
        session_warehouse.execute(replace_script("mlfs"), params)

    assert [call["sql"].split()[0] for call in client.queries] == ["BEGIN", "DELETE", "INSERT", "ROLLBACK"]
    rollback = client.queries[-1]
    assert rollback["sql"] == "ROLLBACK TRANSACTION"
    assert rollback["job_config"].connection_properties[0].value == "session-1"
    assert session_warehouse.statements_issued == 4


def test_a_failed_rollback_aborts_the_session(session_warehouse, client, bq_settings):
    client.failures["INSERT INTO"] = ServiceUnavailable("backend went away")
    client.failures["ROLLBACK"] = ServiceUnavailable("still away")
    params = replace_params(
        "mlfs", [dt.date(2021, 12, 7)], bq_settings, dt.datetime(2022, 7, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(ServiceUnavailable, match="backend went away"):
        session_warehouse.execute(replace_script("mlfs"), params)
    assert [call["sql"] for call in client.queries[-2:]] == [
        "ROLLBACK TRANSACTION",
        "CALL BQ.ABORT_SESSION()",
    ]


def test_a_failure_before_the_transaction_sends_no_rollback(session_warehouse, client, bq_settings):
    client.failures["BEGIN TRANSACTION"] = ServiceUnavailable("no")
    params = replace_params(
        "mlfs", [dt.date(2021, 12, 7)], bq_settings, dt.datetime(2022, 7, 1, tzinfo=dt.UTC)
    )
    with pytest.raises(ServiceUnavailable):
        session_warehouse.execute(replace_script("mlfs"), params)
    assert [call["sql"] for call in client.queries] == ["BEGIN TRANSACTION"]


def test_stale_deletion_snapshots_the_rows_to_keep_inside_its_transaction(session_warehouse, client):
    # Rows written between a snapshot taken outside the transaction and its DELETE would be lost.
    session_warehouse.execute(STALE_DELETE_SQL, STALE_PARAMS | {"dates": [DAY]})
    kinds = [" ".join(call["sql"].split()[:2]) for call in client.queries]
    assert kinds[0] == "BEGIN TRANSACTION" and kinds[-1] == "COMMIT TRANSACTION"
    assert kinds[1:-1] == ["CREATE TEMP", "DELETE FROM", "INSERT INTO", "DROP TABLE"] * len(STAGES)
    assert client.queries[0]["job_config"].create_session is True
    assert all(
        call["job_config"].connection_properties[0].value == "session-1" for call in client.queries[1:]
    )


def test_a_script_without_parameters_is_still_one_job(session_warehouse, client):
    session_warehouse.execute("BEGIN TRANSACTION;\nDELETE FROM {mlfs} WHERE TRUE;\nCOMMIT TRANSACTION;")
    (call,) = client.queries
    assert call["sql"].startswith("BEGIN TRANSACTION;")


# -- labels ----------------------------------------------------------------------------------------


def test_labels_block_labels_every_job_of_the_thread(warehouse, client):
    with warehouse.labels(backfill_run="R1"):
        warehouse.query("SELECT 1 AS one")
        warehouse.execute("DELETE FROM {mlfs} WHERE TRUE", labels={"stage": "mlfs"})
    warehouse.query("SELECT 2 AS two")
    assert [call["job_config"].labels for call in client.queries] == [
        {"app": "nba-backfill", "backfill_run": "r1"},
        {"app": "nba-backfill", "backfill_run": "r1", "stage": "mlfs"},
        {"app": "nba-backfill"},
    ]


# -- the demo's table labels -----------------------------------------------------------------------


def test_existing_tables_reports_labels_and_leaves_out_missing_tables(warehouse, client):
    client.tables[f"{PROJECT}.nba_precompute.ml_feature_store"] = {"backfill_demo": "true"}
    assert warehouse.existing_tables() == {"ml_feature_store": {"backfill_demo": "true"}}
    assert client.queries == []


def test_label_tables_patches_only_the_labels_of_the_three_tables(warehouse, client):
    warehouse.label_tables({"backfill_demo": "true"})
    assert [str(update["table"]) for update in client.table_updates] == [
        f"{PROJECT}.{Settings().datasets[table.role]}.{table.name}" for table in TABLES.values()
    ]
    assert all(
        update["fields"] == ["labels"] and update["retry"] is DEFAULT_RETRY for update in client.table_updates
    )
    assert all(update["labels"] == {"backfill_demo": "true"} for update in client.table_updates)


def test_load_frame_sends_parquet_bytes_appended_to_the_table(warehouse, client):
    frame = pd.DataFrame(
        {
            "game_date": [dt.date(2021, 12, 7)],
            "player_lookup": ["jamesjohnson"],
            "player_name": ["James Johnson"],
            "game_id": ["20211207_BOS_LAL"],
            "team_abbr": ["LAL"],
            "opponent_abbr": ["BOS"],
            "is_home": [True],
            "minutes_played": [31.5],
            "points": [17],
            "processed_at": [pd.Timestamp("2021-12-08 06:00", tz="UTC")],
            "extra_column": ["not sent"],
        }
    )
    warehouse.load_frame(PLAYER_GAME_SUMMARY, frame)

    (load,) = client.loads
    assert load["destination"] == f"{PROJECT}.nba_analytics.player_game_summary"
    config = load["job_config"]
    assert config.source_format == bigquery.SourceFormat.PARQUET
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_APPEND
    # The upload and the polling keep the client's own API-call retries; a load job is never re-run.
    assert "num_retries" not in load
    assert load["job_id_prefix"] == "backfill_" and "job_id" not in load
    ((result_call),) = client.jobs[0].result_calls
    assert set(result_call) == {"retry", "timeout"}  # no job_retry: a load job is never re-run
    assert result_call["timeout"] == warehouse.settings.query_timeout_s + JOB_TIMEOUT_GRACE_S
    sent = pd.read_parquet(io.BytesIO(load["data"]))
    assert list(sent.columns) == list(PLAYER_GAME_SUMMARY.column_names)
    assert sent["player_lookup"].tolist() == ["jamesjohnson"]
    assert client.queries == []


def test_close_closes_the_client(warehouse, client):
    warehouse.close()
    assert client.closed


def test_describe_names_the_project_and_any_emulator(bq_settings, client, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    assert BigQueryWarehouse(bq_settings, PROJECT, client=client).describe() == f"BigQuery project {PROJECT}"
    monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9050")
    described = BigQueryWarehouse(bq_settings, PROJECT, client=client).describe()
    assert described == f"BigQuery project {PROJECT} (emulator at 127.0.0.1:9050)"


# -- every SQL template is valid GoogleSQL, values only as parameters ----------------------------

DAY = dt.date(2021, 12, 9)
RANGE = {"start": dt.date(2021, 12, 1), "end": dt.date(2021, 12, 31)}
COVERAGE_PARAMS = coverage._range_params(Settings(), **RANGE)
STALE_PARAMS = stale._params(Settings(), **RANGE)
REPLACE_NOW = dt.datetime(2022, 7, 1, 3, 0, tzinfo=dt.UTC)

TEMPLATES = {
    "coverage DAILY_SQL": (DAILY_SQL, COVERAGE_PARAMS),
    "coverage MONTHLY_PLAYERS_SQL": (MONTHLY_PLAYERS_SQL, RANGE),
    "coverage DATE_PLAYERS_SQL": (
        coverage.date_players_sql(PIPELINE),
        coverage._range_params(Settings(), DAY, DAY),
    ),
    "coverage BOUNDS_SQL": (coverage.bounds_sql(PIPELINE), {}),
    "stale COUNTS_SQL": (STALE_COUNTS_SQL, STALE_PARAMS),
    **{f"stale FLAGGED {stage}": (sql, STALE_PARAMS) for stage, sql in STALE_FLAGGED.items()},
    "stale DELETE_SQL": (STALE_DELETE_SQL, STALE_PARAMS | {"dates": [DAY]}),
    **{
        f"replace_script {stage}": (
            replace_script(stage),
            replace_params(stage, [DAY], Settings(), REPLACE_NOW),
        )
        for stage in STAGES
    },
    **{f"demo incident {number}": (sql, params) for number, (sql, params) in enumerate(demo._INCIDENT)},
}
"""Every statement template of the backend, with the parameters its caller passes."""


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_valid_bigquery_with_every_parameter_supplied(name, warehouse):
    template, params = TEMPLATES[name]
    (sql,) = warehouse.prepare(template)
    parse_bigquery(sql)
    assert param_names(sql) <= set(params), f"{name} uses parameters its caller does not pass"
    for value in params.values():
        for text in _texts(value):
            assert text not in sql, f"{name} holds the value {text!r} as text"


def _texts(value) -> list[str]:
    """How a parameter value would look if it were spliced into SQL text.

    Prediction system names are left out: the predictions statement holds every known system's
    formula as code (``CASE system_id WHEN 'weighted_form' ...``); the chosen ones arrive as @systems.
    """
    values = value if isinstance(value, (list, tuple)) else [value]
    return [
        v.isoformat() if isinstance(v, dt.date) else v
        for v in values
        if isinstance(v, dt.date) or (isinstance(v, str) and v not in predictions.SYSTEMS)
    ]


# Sentinel inputs that no template could hold by chance: if any of them shows up in SQL text, a
# value was spliced in instead of passed as a parameter.
SENTINEL_SETTINGS = Settings(
    pipeline=PIPELINE.with_stage(
        "mlfs", current_version="fv_sentinel_8c1", bootstrap_min_history=7919
    ).with_stage(
        "predictions",
        current_version="mv_sentinel_4d7",
        bootstrap_min_history=7919,
        gate_min_upstream_pct=77.7,
        processor=PIPELINE.stage("predictions").processor.__class__(
            kind="sql", builtin="predictions", systems=("minutes_rate",)
        ),
    )
)
SENTINEL_START, SENTINEL_END = dt.date(2019, 3, 17), dt.date(2019, 4, 2)


@pytest.fixture
def sentinel_warehouse(client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(SENTINEL_SETTINGS, PROJECT, client=client)


def _assert_values_only_as_parameters(client: FakeClient) -> None:
    assert client.queries, "nothing was sent"
    for call in client.queries:
        sql = call["sql"]
        statements = parse_bigquery(sql)
        params = parameters(call)
        assert param_names(sql) == set(params), sql
        assert (call["retry"], call.get("job_retry", "client default")) == (DEFAULT_RETRY, None)
        for param in params.values():
            values = param.values if isinstance(param, bigquery.ArrayQueryParameter) else [param.value]
            for text in _texts(values):
                assert text not in sql, f"value {text!r} spliced into {sql}"
            numbers = {v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)}
            literals = {
                float(literal.this)
                for statement in statements
                for literal in statement.find_all(exp.Literal)
                if not literal.is_string
            }
            assert not numbers & literals, f"number spliced into {sql}"


def test_coverage_sends_values_only_as_parameters(sentinel_warehouse, client):
    # MIN/MAX over an empty table is one row of NULLs, not no row.
    # The bounds come from INFORMATION_SCHEMA.PARTITIONS (aggregates of no partition: NULLs).
    bounds = pd.DataFrame({"first_id": [None], "last_id": [None], "unpartitioned": [None]})
    client.answers["AS first_id"] = (bounds, [])
    daily = coverage.daily_coverage(sentinel_warehouse, SENTINEL_SETTINGS, SENTINEL_START, SENTINEL_END)
    coverage.monthly_coverage(sentinel_warehouse, SENTINEL_SETTINGS, SENTINEL_START, SENTINEL_END, daily)
    coverage.date_players(sentinel_warehouse, SENTINEL_SETTINGS, SENTINEL_END)
    coverage.data_bounds(sentinel_warehouse)
    assert set(daily["status"]) == {"no_games"}
    assert len(client.queries) == 4
    _assert_values_only_as_parameters(client)


def test_stale_rows_send_values_only_as_parameters(sentinel_warehouse, client):
    stale.stale_counts(sentinel_warehouse, SENTINEL_SETTINGS, SENTINEL_START, SENTINEL_END)
    for stage in STAGES:
        stale.stale_preview(
            sentinel_warehouse, SENTINEL_SETTINGS, stage, SENTINEL_START, SENTINEL_END, limit=4099
        )
    assert len(client.queries) == 1 + len(STAGES)
    _assert_values_only_as_parameters(client)


def test_backfill_scripts_send_values_only_as_parameters(sentinel_warehouse, client):
    dates = [SENTINEL_START, SENTINEL_END]
    now = dt.datetime(2019, 5, 6, 7, 8, 9, tzinfo=dt.UTC)
    for stage in STAGES:
        sentinel_warehouse.execute(
            replace_script(stage), replace_params(stage, dates, SENTINEL_SETTINGS, now)
        )
    _assert_values_only_as_parameters(client)


def test_demo_build_sends_only_valid_parameterised_bigquery(warehouse, client, bq_settings):
    demo.build_demo(warehouse, bq_settings, seed=7)

    assert len(client.loads) == 1 and client.loads[0]["destination"].endswith(".player_game_summary")
    assert len(client.datasets) == 3
    # drop x3, create x3, two stage scripts, the incident statements, the thin-MLFS read and delete
    assert len(client.queries) == 3 + 3 + 2 + len(demo._INCIDENT) + 2
    _assert_values_only_as_parameters(client)
    # The tables are marked as the demo's before any row is loaded.
    assert [update["labels"] for update in client.table_updates] == [demo.DEMO_LABELS] * len(TABLES)


def _table_ids() -> list[str]:
    return [f"{PROJECT}.{Settings().datasets[t.role]}.{t.name}" for t in TABLES.values()]


def test_demo_in_place_refuses_tables_it_did_not_make_even_with_replace(warehouse, client, bq_settings):
    client.tables[_table_ids()[0]] = {"team": "data-eng"}
    client.tables[_table_ids()[1]] = dict(demo.DEMO_LABELS)
    with pytest.raises(BadInput, match="player_game_summary not made by the demo") as caught:
        demo.build_demo_in_place(warehouse, bq_settings, replace=True)
    assert "\n" not in str(caught.value)
    assert client.queries == [] and client.datasets == [] and client.loads == []


def test_demo_in_place_rebuilds_an_earlier_demo_only_with_replace(warehouse, client, bq_settings):
    for table_id in _table_ids():
        client.tables[table_id] = dict(demo.DEMO_LABELS)
    with pytest.raises(BadInput, match="already holds the demo .*give --replace"):
        demo.build_demo_in_place(warehouse, bq_settings)
    assert client.queries == [] and client.loads == []

    demo.build_demo_in_place(warehouse, bq_settings, replace=True)
    assert client.sent[:3] == [f"DROP TABLE IF EXISTS `{table_id}`" for table_id in _table_ids()]
    assert len(client.loads) == 1


def test_demo_in_place_builds_where_nothing_is_there(warehouse, client, bq_settings):
    demo.build_demo_in_place(warehouse, bq_settings)
    assert len(client.datasets) == 3 and len(client.loads) == 1


# -- DuckDB users never load the Google client -----------------------------------------------------


def test_connecting_to_duckdb_does_not_import_the_bigquery_client():
    code = (
        "import sys; from backfill.config import Settings; from backfill.warehouse import connect; "
        "connect(Settings(), ':memory:'); print('google.cloud.bigquery' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_missing_application_default_credentials_are_one_line_bad_input(bq_settings, monkeypatch):
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    def no_credentials(*args, **kwargs):
        raise DefaultCredentialsError("Your default credentials were not found.")

    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    monkeypatch.setattr(google.auth, "default", no_credentials)
    with pytest.raises(BadInput, match="gcloud auth application-default login") as caught:
        connect(bq_settings, f"bigquery://{PROJECT}")
    assert "\n" not in str(caught.value)


def test_connect_picks_the_bigquery_adapter_for_a_bigquery_url(bq_settings, monkeypatch):
    monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9")  # anonymous credentials: no ADC lookup
    warehouse = connect(bq_settings, f"bigquery://{PROJECT}")
    try:
        assert isinstance(warehouse, BigQueryWarehouse)
        assert warehouse.project == PROJECT
        assert warehouse.client.project == PROJECT
    finally:
        warehouse.close()


# -- one job per attempt; waiting re-attaches ------------------------------------------------------


def test_every_job_gets_a_new_id_prefixed_with_the_run(warehouse, client):
    with warehouse.labels(backfill_run="20211207-ab12"):
        warehouse.query("SELECT 1 AS one")
        warehouse.query("SELECT 1 AS one")
    warehouse.query("SELECT 1 AS one")
    first, second, third = (call["job_id"] for call in client.queries)
    assert first.startswith("backfill_20211207_ab12_") and second.startswith("backfill_20211207_ab12_")
    assert first != second
    assert third.startswith("backfill_") and "20211207" not in third


def test_a_failed_poll_re_attaches_to_the_same_job_instead_of_sending_it_again(bq_settings, client):
    slept: list[float] = []
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client, sleep=slept.append)
    client.poll_failures["DELETE"] = [ServiceUnavailable("poll dropped"), ConnectionResetError("reset")]
    warehouse.execute("DELETE FROM {mlfs} WHERE TRUE")

    (call,) = client.queries  # one job sent
    (job,) = client.jobs
    assert [c for c in client.metadata_calls if c[0] == "get_job"] == [("get_job", call["job_id"])] * 2
    assert len(job.result_calls) == 3 and len(slept) == 2
    assert warehouse.statements_issued == 1


def test_a_job_that_failed_is_not_waited_for_again(warehouse, client):
    client.job_failures["DELETE"] = InternalServerError("job failed", errors=[{"reason": "backendError"}])
    with pytest.raises(InternalServerError):
        warehouse.execute("DELETE FROM {mlfs} WHERE TRUE")
    assert len(client.queries) == 1 and ("get_job", client.queries[0]["job_id"]) not in client.metadata_calls
    assert len(client.jobs[0].result_calls) == 1


def test_the_wait_running_out_of_time_ends_the_attempt(warehouse, client):
    client.poll_failures["DELETE"] = [concurrent.futures.TimeoutError()]
    with pytest.raises(concurrent.futures.TimeoutError):
        warehouse.execute("DELETE FROM {mlfs} WHERE TRUE")
    assert len(client.queries) == 1 and ("get_job", client.queries[0]["job_id"]) not in client.metadata_calls


def test_a_poll_that_keeps_failing_gives_up_after_bounded_re_attaches(bq_settings, client):
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client, sleep=lambda s: None)
    client.poll_failures["DELETE"] = [ServiceUnavailable("down")] * 10
    with pytest.raises(ServiceUnavailable):
        warehouse.execute("DELETE FROM {mlfs} WHERE TRUE")
    assert len(client.queries) == 1
    assert len(client.jobs[0].result_calls) == REATTACH_ATTEMPTS


def test_the_bytes_billed_cap_fails_with_a_line_that_says_what_to_change(warehouse, client):
    refused = BadRequest(
        "Query exceeded limit for bytes billed: 1000. 10485760 or higher required.",
        errors=[{"reason": "bytesBilledLimitExceeded"}],
    )
    client.job_failures["SELECT"] = refused
    with pytest.raises(WarehouseRefused, match="raise maximum_bytes_billed") as caught:
        warehouse.query("SELECT 1 AS one")
    assert caught.value.__cause__ is refused
    assert classify(caught.value) == PERMANENT
    assert "\n" not in str(caught.value)


# -- location ------------------------------------------------------------------------------------


def test_jobs_run_where_the_analytics_dataset_is_unless_configured(client, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    client.dataset_locations[f"{PROJECT}.nba_analytics"] = "europe-west3"
    warehouse = BigQueryWarehouse(Settings(), PROJECT, client=client)
    warehouse.query("SELECT 1 AS one")
    warehouse.estimate_bytes("SELECT 1 AS one")
    assert [call["location"] for call in client.queries] == ["europe-west3", "europe-west3"]
    assert client.metadata_calls == [("get_dataset", f"{PROJECT}.nba_analytics")]  # read once

    configured = BigQueryWarehouse(Settings(bigquery_location="asia-northeast1"), PROJECT, client=client)
    configured.query("SELECT 1 AS one")
    assert client.queries[-1]["location"] == "asia-northeast1"
    assert len(client.metadata_calls) == 1


def test_datasets_are_made_in_us_when_nothing_says_otherwise(warehouse, client):
    warehouse.create_schema()
    assert {call["dataset"].location for call in client.datasets} == {"US"}


# -- change detection from metadata ----------------------------------------------------------------


class MetadataClient(FakeClient):
    """Tables answered from their REST resource, as ``tables.get`` returns it."""

    def __init__(self) -> None:
        super().__init__()
        self.resources: dict[str, dict] = {}
        self.table_gets = 0

    def get_table(self, table_id: str, **kwargs):
        self.table_gets += 1
        if table_id not in self.resources:
            raise NotFound(f"Not found: Table {table_id}")
        project, dataset, table = table_id.split(".")
        reference = {"projectId": project, "datasetId": dataset, "tableId": table}
        return bigquery.Table.from_api_repr({"tableReference": reference, **self.resources[table_id]})


def test_the_change_stamp_is_table_metadata_and_moves_with_any_write(bq_settings, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    client = MetadataClient()
    now = [0.0]
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client, monotonic=lambda: now[0])
    ids = [f"{PROJECT}.{bq_settings.dataset_name(s.dataset)}.{s.table}" for s in PIPELINE.stages]
    for table_id in ids:
        client.resources[table_id] = {"lastModifiedTime": "1700000000000", "numRows": "10"}

    first = warehouse.change_stamp()
    assert first is not None and client.table_gets == len(ids)
    now[0] += 1.0  # within STAMP_REUSE_S: the same reading serves
    assert warehouse.change_stamp() == first and client.table_gets == len(ids)
    now[0] += 5.0
    assert warehouse.change_stamp() == first  # nothing written: the same stamp
    client.resources[ids[1]]["lastModifiedTime"] = "1700000005000"  # a DML on MLFS
    now[0] += 5.0
    after_dml = warehouse.change_stamp()
    assert after_dml != first
    client.resources[ids[2]]["streamingBuffer"] = {"estimatedRows": "3", "oldestEntryTime": "1700000006000"}
    now[0] += 5.0
    assert warehouse.change_stamp() != after_dml  # rows streamed in
    assert client.queries == []  # never a job


def test_the_emulator_gives_no_change_stamp_its_dml_does_not_move_table_times(bq_settings, monkeypatch):
    monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9")
    client = MetadataClient()
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client)
    assert warehouse.change_stamp() is None and client.table_gets == 0


def test_the_console_looks_for_other_writers_at_most_once_a_minute_on_bigquery():
    assert BigQueryWarehouse.CHANGE_POLL_S >= 60.0


# -- doctor: what production would refuse (fake answers where the emulator cannot) -----------------


class DoctorClient(MetadataClient):
    """Datasets, tables as ``tables.get`` returns them, and ``tables.testIamPermissions`` answers."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self.granted: dict[str, list[str]] = {}
        self.ids = {}
        for stage in PIPELINE.stages:
            dataset = settings.dataset_name(stage.dataset)
            self.dataset_locations[f"{PROJECT}.{dataset}"] = "US"
            table_id = f"{PROJECT}.{dataset}.{stage.table}"
            self.ids[stage.name] = table_id
            self.resources[table_id] = {
                "timePartitioning": {"type": "DAY", "field": stage.date_column},
                "clustering": {"fields": [stage.player_column]},
            }
            self.granted[table_id] = ["bigquery.tables.updateData"]

    def test_iam_permissions(self, table_id, permissions, **kwargs):
        return {"permissions": [p for p in permissions if p in self.granted.get(table_id, [])]}


def doctor_lines(settings: Settings, client: DoctorClient, monkeypatch) -> dict[str, tuple[str, str]]:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    warehouse = BigQueryWarehouse(settings, PROJECT, client=client)
    return {check.name: (check.status, check.detail) for check in warehouse.health_checks()}


def test_doctor_reads_require_partition_filter_and_says_the_console_works_with_it(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    client.resources[client.ids["played"]]["requirePartitionFilter"] = True
    checks = doctor_lines(bq_settings, client, monkeypatch)
    status, detail = checks["partition filter player_game_summary"]
    assert status == "ok" and "requires a filter on game_date" in detail
    assert checks["partition filter ml_feature_store"][0] == "ok"


def test_doctor_fails_a_required_filter_on_another_column_saying_what_to_change(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    resource = client.resources[client.ids["mlfs"]]
    resource["requirePartitionFilter"] = True
    resource["timePartitioning"] = {"type": "DAY", "field": "processed_day"}
    status, detail = doctor_lines(bq_settings, client, monkeypatch)["partition filter ml_feature_store"]
    assert status == "FAIL"
    assert (
        "processed_day" in detail and "date_column" in detail and "require_partition_filter = false" in detail
    )


def test_doctor_warns_of_a_streaming_buffer_that_dml_waits_for(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    client.resources[client.ids["predictions"]]["streamingBuffer"] = {
        "estimatedRows": "120",
        "oldestEntryTime": "1700000000000",
    }
    checks = doctor_lines(bq_settings, client, monkeypatch)
    status, detail = checks["streaming buffer player_prop_predictions"]
    assert status == "warn" and "120 rows" in detail and "refuses DML" in detail and "rerun" in detail
    assert "streaming buffer ml_feature_store" not in checks


def test_doctor_fails_a_table_the_account_may_not_write_saying_which_role(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    client.granted[client.ids["predictions"]] = []
    checks = doctor_lines(bq_settings, client, monkeypatch)
    status, detail = checks["permission to write player_prop_predictions"]
    assert (
        status == "FAIL" and "bigquery.tables.updateData" in detail and "roles/bigquery.dataEditor" in detail
    )
    assert checks["permission to write ml_feature_store"] == ("ok", "bigquery.tables.updateData granted")
    # Answered by testIamPermissions: no dry-run DELETE was needed.
    assert not [call for call in client.queries if call["sql"].startswith("DELETE")]


def test_doctor_fails_when_the_partitions_view_is_refused_saying_which_permission(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    client.failures["INFORMATION_SCHEMA.PARTITIONS"] = Forbidden(
        "Access Denied: Table INFORMATION_SCHEMA.PARTITIONS: User does not have permission bigquery.tables.list"
    )
    status, detail = doctor_lines(bq_settings, client, monkeypatch)["permission to list partitions"]
    assert status == "FAIL" and "bigquery.tables.list" in detail


def test_a_write_of_this_adapter_is_seen_at_its_next_look(bq_settings, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    client = MetadataClient()
    warehouse = BigQueryWarehouse(bq_settings, PROJECT, client=client, monotonic=lambda: 0.0)
    table_id = f"{PROJECT}.{bq_settings.dataset_name(PIPELINE.stage('mlfs').dataset)}.ml_feature_store"
    client.resources[table_id] = {"lastModifiedTime": "1700000000000"}
    before = warehouse.change_stamp()
    warehouse.execute("DELETE FROM {mlfs} WHERE game_date = @d", {"d": dt.date(2021, 12, 7)})
    client.resources[table_id]["lastModifiedTime"] = "1700000001000"  # what the DELETE did
    # The clock has not moved: only the write itself says the reading is out of date.
    assert warehouse.change_stamp() != before


# -- the preflight of every write asks the same (issue "first day") --------------------------------


def _preflight(settings: Settings, client: DoctorClient, monkeypatch) -> None:
    from backfill.doctor import check_before_writing
    from backfill.warehouse.schema import TABLES as DEMO_TABLES

    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    kinds = {"FLOAT64": "FLOAT", "INT64": "INTEGER", "BOOL": "BOOLEAN"}
    for table_id in client.ids.values():
        table = DEMO_TABLES[table_id.rsplit(".", 1)[1]]
        client.resources[table_id]["labels"] = {"backfill_demo": "true"}  # the demo's: it may write
        client.resources[table_id]["schema"] = {
            "fields": [
                {
                    "name": name,
                    "type": kinds.get(kind, kind),
                    "mode": "REQUIRED" if name in table.required else "NULLABLE",
                }
                for name, kind in table.columns
            ]
        }
    check_before_writing(BigQueryWarehouse(settings, PROJECT, client=client))


def test_a_write_is_refused_before_any_job_when_the_account_may_not_write_a_stage_table(
    bq_settings, monkeypatch
):
    client = DoctorClient(bq_settings)
    client.granted[client.ids["predictions"]] = []
    with pytest.raises(BadInput, match="refused before any write: .*lacks bigquery.tables.updateData"):
        _preflight(bq_settings, client, monkeypatch)
    assert client.queries == []  # metadata only


def test_a_write_is_refused_when_a_required_partition_filter_is_on_another_column(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    resource = client.resources[client.ids["mlfs"]]
    resource["requirePartitionFilter"] = True
    resource["timePartitioning"] = {"type": "DAY", "field": "processed_day"}
    with pytest.raises(BadInput, match="refused before any write: .*requires a filter on processed_day"):
        _preflight(bq_settings, client, monkeypatch)


def test_a_write_passes_the_preflight_where_doctor_finds_nothing_wrong(bq_settings, monkeypatch):
    client = DoctorClient(bq_settings)
    client.resources[client.ids["played"]]["requirePartitionFilter"] = True  # on game_date: met
    _preflight(bq_settings, client, monkeypatch)
