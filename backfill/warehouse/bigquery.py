"""The production warehouse: BigQuery through the official ``google-cloud-bigquery`` client.

Google libraries are imported here only, so DuckDB users and tests need no cloud packages loaded.
Credentials come from Application Default Credentials; when ``BIGQUERY_EMULATOR_HOST`` (host:port)
is set, anonymous credentials and that endpoint are used instead, which is how the tests run offline.

Retries live at one level only, in :mod:`backfill.retry`: the client's own ``retry`` and
``job_retry`` defaults would otherwise re-send API calls and re-run failed jobs underneath ours
(up to 10 minutes each), multiplying attempts and hiding failures from the run ledger.
"""

from __future__ import annotations

import datetime as dt
import io
import os
from typing import Any

import pandas as pd
from google.cloud import bigquery

from backfill.config import Settings
from backfill.validate import check_project
from backfill.warehouse.base import Warehouse, dates_to_python
from backfill.warehouse.schema import Table

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
"""host:port of a local BigQuery emulator; when set, no Google endpoint is ever called."""


def query_parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter | bigquery.ArrayQueryParameter:
    """A typed BigQuery parameter for a Python value (lists become ARRAY parameters)."""
    if isinstance(value, (list, tuple)):
        element = _scalar_type(value[0]) if value else "STRING"
        return bigquery.ArrayQueryParameter(name, element, list(value))
    return bigquery.ScalarQueryParameter(name, _scalar_type(value), value)


def _scalar_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP"
    if isinstance(value, dt.date):
        return "DATE"
    if value is None or isinstance(value, str):
        return "STRING"
    raise TypeError(f"no BigQuery parameter type for {type(value).__name__}")


class BigQueryWarehouse(Warehouse):
    """Tables in ``PROJECT.DATASET``, partitioned by ``game_date``, clustered by ``player_lookup``."""

    kind = "bigquery"
    dialect = "bigquery"
    SUPPORTS_DRY_RUN = True

    def __init__(self, settings: Settings, project: str, client: bigquery.Client | None = None):
        super().__init__(settings)
        self.project = check_project(project)
        self.emulator_host = os.environ.get(EMULATOR_ENV) or None
        self.client = client or self._make_client()

    def _make_client(self) -> bigquery.Client:
        if self.emulator_host:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(
                project=self.project,
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=f"http://{self.emulator_host}"),
                location=self.settings.bigquery_location,
            )
        return bigquery.Client(project=self.project, location=self.settings.bigquery_location)

    def describe(self) -> str:
        where = f" (emulator at {self.emulator_host})" if self.emulator_host else ""
        return f"BigQuery project {self.project}{where}"

    def table_ref(self, table: Table) -> str:
        return f"`{self.project}.{self.dataset(table)}.{table.name}`"

    def job_config(self, params: dict, labels: dict | None = None, dry_run: bool = False):
        """Parameters, labels, the bytes-billed guard and (for estimates) a dry run."""
        return bigquery.QueryJobConfig(
            query_parameters=[query_parameter(name, value) for name, value in params.items()],
            labels={key: _label(value) for key, value in (labels or {}).items()},
            maximum_bytes_billed=self.settings.maximum_bytes_billed or None,
            dry_run=dry_run,
            use_query_cache=not dry_run,
        )

    def _run(self, statements: tuple[str, ...], params: dict, labels: dict | None):
        (statement,) = statements
        job = self.client.query(
            statement,
            job_config=self.job_config(params, labels),
            retry=None,
            job_retry=None,
            timeout=self.settings.query_timeout_s,
        )
        return job.result(retry=None, timeout=self.settings.query_timeout_s)

    def _query(self, statements, params, labels: dict | None = None, **options: Any) -> pd.DataFrame:
        rows = self._run(statements, params, labels)
        # The Storage API client would dial Google directly; plain REST paging suffices here.
        frame = rows.to_dataframe(create_bqstorage_client=False)
        date_columns = [field.name for field in rows.schema if field.field_type == "DATE"]
        return dates_to_python(frame, date_columns)

    def _execute(self, statements, params, labels: dict | None = None, **options: Any) -> None:
        self._run(statements, params, labels)

    def _create_dataset(self, dataset: str) -> None:
        self._count()
        target = bigquery.Dataset(f"{self.project}.{dataset}")
        target.location = self.settings.bigquery_location
        self.client.create_dataset(target, exists_ok=True, retry=None)

    def _table_options(self, table: Table) -> str:
        return " PARTITION BY game_date CLUSTER BY player_lookup"

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        self._count()
        buffer = io.BytesIO()
        frame[list(table.column_names)].to_parquet(buffer, index=False)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        )
        destination = f"{self.project}.{self.dataset(table)}.{table.name}"
        job = self.client.load_table_from_file(buffer, destination, job_config=config)
        job.result(timeout=self.settings.query_timeout_s)

    def estimate_bytes(self, template: str, params: dict | None = None) -> int | None:
        self._count()
        (statement,) = self.prepare(template)
        job = self.client.query(
            statement, job_config=self.job_config(dict(params or {}), dry_run=True), retry=None
        )
        return job.total_bytes_processed

    def close(self) -> None:
        self.client.close()


def _label(value: Any) -> str:
    """BigQuery label values: lowercase letters, digits, '-' and '_', at most 63 characters."""
    text = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(value).lower())
    return text[:63]
