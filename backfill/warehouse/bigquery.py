"""The production warehouse: BigQuery through the official ``google-cloud-bigquery`` client.

Google libraries are imported here only, so DuckDB users and tests need no cloud packages loaded.
Credentials come from Application Default Credentials; when ``BIGQUERY_EMULATOR_HOST`` (host:port)
is set, anonymous credentials and that endpoint are used instead, which is how the tests run offline.

Retries live at one level only, in :mod:`backfill.retry`: the client's own ``retry`` and
``job_retry`` defaults would otherwise re-send API calls and re-run failed jobs underneath ours
(up to 10 minutes each), and its uploads retry 6 times by default; all of that is turned off here,
so every attempt is one the run ledger sees.

Scripts. A multi-statement script (the replace transaction, the stale-row deletion) normally runs
as one job: BigQuery binds its ``@parameters`` and rolls the transaction back if any statement
fails. Where the endpoint cannot bind parameters inside a script (``scripts_bind_parameters`` is
False: the local emulator, bqemulator 1.4.0), the same script runs as one job per statement inside
a BigQuery *session*, ``BEGIN TRANSACTION`` and ``COMMIT TRANSACTION`` being jobs of their own and
temporary tables living on between jobs; a failure sends ``ROLLBACK TRANSACTION``. Real BigQuery
supports multi-job transactions in a session, so this path is atomic there too; it costs one job
per statement (4 for a replace instead of 1), which is why it is not the default.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import os
from typing import Any

import pandas as pd
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from backfill.config import Settings
from backfill.crashpoints import IN_TRANSACTION, crash_point
from backfill.errors import BadInput
from backfill.validate import check_project
from backfill.warehouse.base import Warehouse, dates_to_python, param_names
from backfill.warehouse.schema import TABLES, Table
from backfill.warehouse.sql import split_statements

log = logging.getLogger(__name__)

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
"""host:port of a local BigQuery emulator; when set, no Google endpoint is ever called."""

JOB_LABELS = {"app": "nba-backfill"}
"""Labels on every job this adapter sends, so billing exports and INFORMATION_SCHEMA.JOBS can
attribute the cost; callers add their own (a backfill adds its run id and stage)."""

UPLOAD_RETRIES = 0
"""``load_table_from_file`` retries an upload 6 times by default; ours is the only retry level."""

_TRANSACTION_CONTROL = {"BEGIN", "COMMIT", "ROLLBACK"}


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


def used_params(statement: str, params: dict) -> dict:
    """Only the parameters a statement uses: what real BigQuery does with others is not relied on."""
    used = param_names(statement)
    return {name: value for name, value in params.items() if name in used}


def _keyword(statement: str) -> str:
    """The first word of a statement, upper-cased (``BEGIN``, ``DELETE``, ...)."""
    words = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return " ".join(words).split(None, 1)[0].upper() if words else ""


class BigQueryWarehouse(Warehouse):
    """Tables in ``PROJECT.DATASET``, partitioned by ``game_date``, clustered by ``player_lookup``.

    ``scripts_bind_parameters`` says whether the endpoint binds ``@parameters`` inside a
    multi-statement script: true of BigQuery, false of the emulator (see the module docstring);
    it picks how :meth:`execute` runs a parameterised script, and nothing else.
    """

    kind = "bigquery"
    dialect = "bigquery"
    SUPPORTS_DRY_RUN = True

    def __init__(
        self,
        settings: Settings,
        project: str,
        client: bigquery.Client | None = None,
        *,
        scripts_bind_parameters: bool | None = None,
    ):
        super().__init__(settings)
        self.project = check_project(project)
        self.emulator_host = os.environ.get(EMULATOR_ENV) or None
        self.client = client or self._make_client()
        if scripts_bind_parameters is None:
            # bqemulator 1.4.0 runs scripts without their parameters (tests/bigquery pins it).
            scripts_bind_parameters = self.emulator_host is None
        self.scripts_bind_parameters = scripts_bind_parameters

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
        from google.auth.exceptions import DefaultCredentialsError

        try:
            return bigquery.Client(project=self.project, location=self.settings.bigquery_location)
        except DefaultCredentialsError as exc:
            raise BadInput(
                "no Google credentials for BigQuery (Application Default Credentials): run "
                "'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
            ) from exc

    def describe(self) -> str:
        where = f" (emulator at {self.emulator_host})" if self.emulator_host else ""
        return f"BigQuery project {self.project}{where}"

    @property
    def url(self) -> str:
        return f"bigquery://{self.project}"

    def name_ref(self, dataset: str, table: str) -> str:
        return f"`{self.project}.{dataset}.{table}`"

    def table_columns(self, dataset: str, table: str) -> list[tuple[str, bool]]:
        try:
            remote = self.client.get_table(
                f"{self.project}.{dataset}.{table}", timeout=self.settings.query_timeout_s
            )
        except NotFound:
            raise BadInput(f"table {dataset}.{table} does not exist in {self.describe()}") from None
        return [(field.name, field.mode == "REQUIRED") for field in remote.schema]

    def _table_id(self, table: Table) -> str:
        return f"{self.project}.{self.dataset(table)}.{table.name}"

    # -- jobs -------------------------------------------------------------------------------

    def job_config(
        self,
        params: dict,
        labels: dict | None = None,
        dry_run: bool = False,
        *,
        session_id: str | None = None,
        create_session: bool = False,
    ) -> bigquery.QueryJobConfig:
        """Parameters, labels, the bytes-billed guard, the job timeout, and any session."""
        options: dict[str, Any] = {
            "query_parameters": [query_parameter(name, value) for name, value in params.items()],
            "labels": {key: _label(value) for key, value in (JOB_LABELS | dict(labels or {})).items()},
            "dry_run": dry_run,
            "use_query_cache": not dry_run,
        }
        # 0 means no guard: the argument is left out (QueryJobConfig refuses None).
        if self.settings.maximum_bytes_billed:
            options["maximum_bytes_billed"] = self.settings.maximum_bytes_billed
        # The server stops a job that outlives the client's wait, so a timed-out attempt that is
        # retried does not keep running (and billing) beside its retry.
        if self.settings.query_timeout_s and not dry_run:
            options["job_timeout_ms"] = int(self.settings.query_timeout_s * 1000)
        if create_session:
            options["create_session"] = True
        if session_id:
            options["connection_properties"] = [bigquery.ConnectionProperty("session_id", session_id)]
        return bigquery.QueryJobConfig(**options)

    def _job(self, statement: str, params: dict, labels: dict | None, **session: Any):
        """Send one job and wait for it; no client-level retry of the call or of the job."""
        job = self.client.query(
            statement,
            job_config=self.job_config(used_params(statement, params), labels, **session),
            retry=None,
            job_retry=None,
            timeout=self.settings.query_timeout_s,
        )
        return job, job.result(retry=None, timeout=self.settings.query_timeout_s)

    def _query(self, statements, params, labels: dict | None = None, **options: Any) -> pd.DataFrame:
        (statement,) = statements
        _, rows = self._job(statement, params, labels)
        # The Storage API client would dial Google directly; plain REST paging suffices here.
        frame = rows.to_dataframe(create_bqstorage_client=False)
        date_columns = [field.name for field in rows.schema if field.field_type == "DATE"]
        return dates_to_python(frame, date_columns)

    def _execute(self, statements, params, labels: dict | None = None, **options: Any) -> None:
        (script,) = statements
        parts = split_statements(script)
        if len(parts) > 1 and not self.scripts_bind_parameters and used_params(script, params):
            self._execute_in_session(parts, params, labels)
        else:
            self._job(script, params, labels)

    def _execute_in_session(self, statements: tuple[str, ...], params: dict, labels: dict | None) -> None:
        """One job per statement in a new session; the transaction spans jobs, rolled back on failure.

        Every job after the first counts as one more statement issued (jobs are what BigQuery
        bills and what a run's statement count reports).
        """
        session_id: str | None = None
        in_transaction = False
        try:
            for number, statement in enumerate(statements):
                if number:
                    self._count()
                job, _ = self._job(
                    statement, params, labels, session_id=session_id, create_session=session_id is None
                )
                session_id = session_id or _session_id(job)
                keyword = _keyword(statement)
                if keyword in _TRANSACTION_CONTROL:
                    in_transaction = keyword == "BEGIN"
                elif in_transaction and keyword == "DELETE":
                    crash_point(IN_TRANSACTION)
        except BaseException:
            if in_transaction and session_id:
                self._roll_back(session_id, labels)
            raise

    def _roll_back(self, session_id: str, labels: dict | None) -> None:
        """Abandon the session's open transaction; if even that fails, abort the whole session
        (BigQuery then rolls it back itself). Best effort: the original error is what matters."""
        for statement in ("ROLLBACK TRANSACTION", "CALL BQ.ABORT_SESSION()"):
            self._count()
            try:
                self._job(statement, {}, labels, session_id=session_id)
                return
            except Exception as exc:  # noqa: BLE001 - reported, then the next way is tried
                log.warning("%s in session %s failed: %s", statement, session_id, exc)

    def estimate_bytes(self, template: str, params: dict | None = None) -> int | None:
        """Bytes the statement (or each statement of a script, summed) would process: dry runs.

        Transaction control is skipped; a statement that reads a temporary table made earlier in
        the same script cannot be estimated on its own.
        """
        params = dict(params or {})
        total = 0
        for statement in split_statements(self.prepare(template)[0]):
            if _keyword(statement) in _TRANSACTION_CONTROL:
                continue
            self._count()
            job = self.client.query(
                statement,
                job_config=self.job_config(used_params(statement, params), dry_run=True),
                retry=None,
                job_retry=None,
                timeout=self.settings.query_timeout_s,
            )
            total += int(job.total_bytes_processed or 0)
        return total

    # -- datasets, tables, loads --------------------------------------------------------------

    def _create_dataset(self, dataset: str) -> None:
        self._count()
        target = bigquery.Dataset(f"{self.project}.{dataset}")
        target.location = self.settings.bigquery_location
        self.client.create_dataset(target, exists_ok=True, retry=None, timeout=self.settings.query_timeout_s)

    def _table_options(self, table: Table) -> str:
        return " PARTITION BY game_date CLUSTER BY player_lookup"

    def _stage_table_options(self, stage) -> str:
        return f" PARTITION BY {stage.date_column} CLUSTER BY {stage.player_column}"

    def existing_tables(self) -> dict[str, dict[str, str]]:
        """The labels of each of the three tables that exists (tables that do not are left out)."""
        found = {}
        for table in TABLES.values():
            try:
                remote = self.client.get_table(
                    self._table_id(table), retry=None, timeout=self.settings.query_timeout_s
                )
            except NotFound:
                continue
            found[table.name] = dict(remote.labels or {})
        return found

    def label_tables(self, labels: dict[str, str]) -> None:
        """Set labels on the three tables (which must exist)."""
        for table in TABLES.values():
            target = bigquery.Table(self._table_id(table))
            target.labels = {key: _label(value) for key, value in labels.items()}
            self.client.update_table(target, ["labels"], retry=None, timeout=self.settings.query_timeout_s)

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        self._count()
        buffer = io.BytesIO()
        frame[list(table.column_names)].to_parquet(buffer, index=False)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            labels=dict(JOB_LABELS),
        )
        job = self.client.load_table_from_file(
            buffer,
            self._table_id(table),
            job_config=config,
            num_retries=UPLOAD_RETRIES,
            timeout=self.settings.query_timeout_s,
        )
        job.result(retry=None, timeout=self.settings.query_timeout_s)

    def close(self) -> None:
        self.client.close()


def _session_id(job) -> str:
    info = getattr(job, "session_info", None)
    session_id = getattr(info, "session_id", None)
    if not session_id:
        raise RuntimeError("BigQuery did not open the session this script needs (no session_info)")
    return session_id


def _label(value: Any) -> str:
    """BigQuery label values: lowercase letters, digits, '-' and '_', at most 63 characters."""
    text = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in str(value).lower())
    return text[:63]
