"""The production warehouse: BigQuery through the official ``google-cloud-bigquery`` client.

Google libraries are imported here only, so DuckDB users and tests need no cloud packages loaded.
Credentials come from Application Default Credentials; when ``BIGQUERY_EMULATOR_HOST`` (host:port)
is set, anonymous credentials and that endpoint are used instead, which is how the tests run offline.

Two retry layers, as in the client's own ``google/cloud/bigquery/retry.py`` (``DEFAULT_RETRY`` for
API calls, ``DEFAULT_JOB_RETRY`` for failed jobs), each kept at one level only:

- *API calls* (inserting a job, polling it, reading its rows, getting a dataset) keep the client's
  bounded ``DEFAULT_RETRY``: a dropped poll is retried underneath in seconds, and re-polling never
  re-runs anything. A job is inserted with a ``job_id_prefix`` (the client draws the rest of the id
  once per insert), never a whole ``job_id``: given a whole id, the client treats a 409 on a
  retried insert as the caller's mistake and raises it (``_job_helpers.query_jobs_insert``); given
  a prefix, it re-attaches to the job that the lost first answer had created, so a job is never
  sent twice and never counted as failed for it. While waiting for a job, API calls are retried
  for at most :data:`POLL_DEADLINE_S`: ``jobs.getQueryResults`` reports a *failed job* as an HTTP
  error of an ambiguous reason (``backendError``), which the client's default would retry for
  10 minutes before anyone looked at the job itself.
- *Jobs* are never re-run by the client (``job_retry=None``): a failed job is a failed attempt of
  :mod:`backfill.retry`, which runs the statement again as a new job with a new id, and the run
  ledger sees every attempt. A failure while *waiting* for a job (the poll gave up, the connection
  dropped) re-attaches to the same job (``client.get_job``, then ``result`` again) instead of
  sending it again: waiting is not an attempt.

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
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import tenacity
from google.api_core.exceptions import Forbidden, GoogleAPICallError, NotFound
from google.cloud import bigquery
from google.cloud.bigquery.retry import DEFAULT_RETRY

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.faults import EngineErrors, explain, is_transient
from backfill.validate import check_project
from backfill.warehouse.base import (
    FAIL,
    OK,
    TRANSACTION_CONTROL,
    WARN,
    Check,
    Column,
    DateBounds,
    Params,
    PartitionKey,
    Warehouse,
    dates_to_python,
    keyword,
    param_names,
)
from backfill.warehouse.schema import TABLES, Table
from backfill.warehouse.sql import split_statements

log = logging.getLogger(__name__)

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
"""host:port of a local BigQuery emulator; when set, no Google endpoint is ever called."""

JOB_LABELS = {"app": "nba-backfill"}
"""Labels on every job this adapter sends, so billing exports and INFORMATION_SCHEMA.JOBS can
attribute the cost; callers add their own (a backfill adds its run id and stage)."""

API_RETRY = DEFAULT_RETRY
"""The client's own bounded retry of one API call (10 minutes at most, reasons and transport errors
of ``google.cloud.bigquery.retry._should_retry``): a different layer from ours, which re-runs
whole statements; it never re-runs a job (``job_retry=None`` everywhere)."""

POLL_DEADLINE_S = 60.0
"""How long the client may retry the API calls of one wait for a job (jobs.get, getQueryResults)
before the wait fails and :meth:`BigQueryWarehouse._wait` looks at the job itself (``jobs.get``):
a job that failed is noticed within this, not after the client's 10-minute default."""

POLL_RETRY = API_RETRY.with_timeout(POLL_DEADLINE_S)
"""The client's retry predicate, bounded by :data:`POLL_DEADLINE_S`, for the calls of a wait."""

JOB_TIMEOUT_GRACE_S = 30.0
"""How much longer the client waits for a job than BigQuery lets it run (``job_timeout_ms``), so
the server's own verdict ("stopped": Job timed out, transient) arrives before the client gives up."""

UPDATE_DATA = "bigquery.tables.updateData"
"""The permission a backfill's DELETE and INSERT need on a stage table."""

STAMP_REUSE_S = 2.0
"""How long one reading of the tables' metadata serves as the change stamp: a page rerun asks for
it several times (bounds, tables, coverage) and each ask is one ``tables.get`` per stage table."""

REATTACH_ATTEMPTS = 5
"""How many times waiting for one job may fail (the poll gave up) before the attempt fails."""

DEFAULT_DATASET_LOCATION = "US"
"""Where the demo makes datasets when no location is configured and none exists yet."""

_API = "google.api_core.exceptions."

BIGQUERY_ERRORS = EngineErrors(
    engine="bigquery",
    label="BigQuery",
    # google/cloud/bigquery/retry.py: _RETRYABLE_REASONS (API errors worth retrying) and
    # job_retry_reasons (jobs that failed for reasons a new job may not meet).
    transient_reasons=frozenset(
        {
            "rateLimitExceeded",  # reported as 403: the status alone would say permanent
            "backendError",
            "internalError",
            "badGateway",
            "jobBackendError",
            "jobInternalError",
            "jobRateLimitExceeded",
        }
    ),
    # Reasons where the quota, the cap or the account is the answer: another attempt bills or fails
    # the same way. See https://cloud.google.com/bigquery/docs/error-messages.
    permanent_reasons={
        "bytesBilledLimitExceeded": (
            "the query would bill more bytes than the cap allows: raise maximum_bytes_billed "
            "(BACKFILL_MAXIMUM_BYTES_BILLED; 0 = no cap) or backfill fewer dates per batch (batch_size)"
        ),
        "quotaExceeded": (
            "a BigQuery quota is used up (often a daily one): wait until it resets, or ask for a higher "
            "quota in the Cloud console (IAM & Admin > Quotas)"
        ),
        "billingNotEnabled": (
            "billing is not enabled on the project: enable it in the Cloud console, or point "
            "BACKFILL_WAREHOUSE at a project that has it"
        ),
        "billingTierLimitExceeded": (
            "the query needs a higher billing tier: move the project to on-demand or capacity pricing"
        ),
        "accessDenied": (
            "the account lacks a permission: grant roles/bigquery.jobUser on the project, "
            "dataViewer on the analytics dataset and dataEditor on the written ones (README, IAM roles)"
        ),
        "resourcesExceeded": "the query ran out of resources: lower batch_size so each job covers fewer dates",
        "responseTooLarge": "the result is too large to return: narrow the date range",
    },
    # job_timeout_ms ran out: BigQuery stops the job with reason "stopped" (or "timeout") and says
    # it timed out. A timeout is weather (the team's December failures); a user's cancel, also
    # "stopped", is not, hence the message.
    timeout_reasons=(("stopped", "timed out"), ("timeout", "timed out")),
    # DML (DELETE, UPDATE, MERGE) on rows streamed in the last ~30-90 minutes is refused until
    # BigQuery flushes them from its streaming buffer: only time helps, not the policy's seconds.
    # See https://cloud.google.com/bigquery/docs/data-manipulation-language#limitations.
    later_messages={
        "rows in the streaming buffer": (
            "BigQuery refuses DML on rows still in its streaming buffer (rows streamed in the last "
            "30-90 minutes, e.g. by the team's prediction writer): rerun these dates once the "
            "buffer is flushed (doctor warns while a stage table has one)"
        ),
    },
    # google/cloud/bigquery/retry.py: _UNSTRUCTURED_RETRYABLE_TYPES, which decide when an error has
    # no structured reason. GatewayTimeout (504) and DeadlineExceeded are added: a timeout in
    # front of the API says the answer was lost, not that the request was wrong (the team's
    # "timeout"/"deadline" keywords, SPEC 1); the client turns its own wait timeout into
    # concurrent.futures.TimeoutError, which backfill.faults treats as transient for every engine.
    transient_types=frozenset(
        {
            _API + "TooManyRequests",
            _API + "InternalServerError",
            _API + "BadGateway",
            _API + "ServiceUnavailable",
            _API + "GatewayTimeout",
            _API + "DeadlineExceeded",
            "requests.exceptions.ConnectionError",
            "requests.exceptions.ChunkedEncodingError",
            "requests.exceptions.Timeout",
            "google.auth.exceptions.TransportError",
        }
    ),
    # _UNSTRUCTURED_NON_RETRYABLE_TYPES: a TLS failure is configuration, not weather.
    never_transient_types=frozenset({"requests.exceptions.SSLError"}),
    permanent_types=frozenset(
        {
            _API + "ClientError",
            "google.auth.exceptions.DefaultCredentialsError",
            "google.auth.exceptions.RefreshError",
        }
    ),
    # Two writers met on the same table (another replace, the pipeline's own MERGE): BigQuery
    # aborts one with reason invalidQuery (400), and its docs say to retry it. See
    # https://cloud.google.com/bigquery/docs/troubleshoot-queries (concurrent update) and
    # https://cloud.google.com/bigquery/docs/transactions#transaction_concurrency.
    conflict_messages=(
        (_API + "GoogleAPICallError", "could not serialize access to table"),
        (_API + "GoogleAPICallError", "due to concurrent update"),
    ),
)
"""What BigQuery's errors mean, for :mod:`backfill.faults`."""


def partition_bounds_sql(partitions_view: str) -> str:
    """Min and max partition id with rows of table ``@table`` among ids in [``@first``, ``@last``]
    (``__NULL__`` and ``__UNPARTITIONED__`` sort after every digit string, so they fall outside), and
    how many rows sit in no date partition at all."""
    in_range = "IF(partition_id BETWEEN @first AND @last, partition_id, NULL)"
    return (
        f"SELECT MIN({in_range}) AS first_id, MAX({in_range}) AS last_id, "
        "SUM(IF(partition_id = '__UNPARTITIONED__', total_rows, 0)) AS unpartitioned "
        f"FROM {partitions_view} WHERE table_name = @table AND total_rows > 0"
    )


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


def job_id_prefix(labels: dict | None) -> str:
    """``backfill_<run id>_`` in a run, else ``backfill_``: the client adds a new uuid per insert.

    Each attempt is a new insert, so a re-run is a new job; a prefix (not a whole id) keeps the
    client's recovery of a retried insert that meets its own job (409): it re-attaches to it."""
    run = _label(dict(labels or {}).get("backfill_run", "")).replace("-", "_")
    return "_".join(part for part in ("backfill", run) if part) + "_"


@dataclass(frozen=True)
class JobDeadlines:
    """How long BigQuery lets a job run and how long the client waits for it: one rule, written once."""

    job_timeout_ms: int | None
    """``job_timeout_ms`` of the job (None: no limit)."""
    wait_s: float | None
    """The client's whole wait for the job (None: as long as it takes)."""


def job_deadlines(settings: Settings) -> JobDeadlines:
    """``query_timeout_s`` is the job's limit on the server; the client waits a little longer
    (:data:`JOB_TIMEOUT_GRACE_S`), so a job that runs too long ends as BigQuery's "Job timed out"
    (transient, retried as a new job) and never keeps running and billing beside its retry."""
    if not settings.query_timeout_s:
        return JobDeadlines(None, None)
    return JobDeadlines(int(settings.query_timeout_s * 1000), settings.query_timeout_s + JOB_TIMEOUT_GRACE_S)


def job_failed(job: Any) -> bool:
    """Whether the job itself is known to have finished with an error (not merely a failed poll)."""
    return getattr(job, "state", None) == "DONE" and getattr(job, "error_result", None) is not None


class BigQueryWarehouse(Warehouse):
    """Tables in ``PROJECT.DATASET``, partitioned by ``game_date``, clustered by ``player_lookup``.

    ``scripts_bind_parameters`` says whether the endpoint binds ``@parameters`` inside a
    multi-statement script: true of BigQuery, false of the emulator (see the module docstring);
    it picks how :meth:`execute` runs a parameterised script, and nothing else.
    ``partition_times_tracked`` says whether ``INFORMATION_SCHEMA.PARTITIONS`` reports when each
    partition last changed: true of BigQuery, false of the emulator (:meth:`partition_times` then
    answers None, and callers measure as they would on any warehouse).
    ``table_times_tracked`` says whether a table's ``lastModifiedTime`` moves with every write, DML
    included: true of BigQuery, false of the emulator (its DML leaves it as it was); it decides
    whether :meth:`change_stamp` reads the tables' metadata or answers None.
    """

    kind = "bigquery"
    dialect = "bigquery"
    SUPPORTS_DRY_RUN = True
    SUPPORTS_SCRATCH_DATASETS = True
    ERRORS = BIGQUERY_ERRORS
    # Each look is a tables.get per stage table (no job, no bytes); a minute keeps a tab left open
    # all day to a few thousand metadata requests.
    CHANGE_POLL_S = 60.0
    EMULATOR_TRACKS_TABLE_TIMES: ClassVar[bool] = False
    """bqemulator 1.4.0 moves a table's last-modified time on DDL, never on DML: on it, the change
    stamp would miss writes, so it is not used there (a test that only reruns on unchanged data may
    say otherwise)."""

    @classmethod
    def parse_location(cls, url: str) -> str:
        """The project of ``bigquery://PROJECT``."""
        project = url.removeprefix("bigquery://").strip("/")
        if not project or "/" in project:
            raise BadInput(f"malformed warehouse URL {url!r} (expected bigquery://PROJECT)")
        return check_project(project)

    def __init__(
        self,
        settings: Settings,
        project: str,
        client: bigquery.Client | None = None,
        *,
        scripts_bind_parameters: bool | None = None,
        partition_times_tracked: bool | None = None,
        table_times_tracked: bool | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        super().__init__(settings)
        self.project = check_project(project)
        self.sleep = sleep
        """Waits between re-attaching to a job (injectable, so tests never really sleep)."""
        self._location: str | None = settings.bigquery_location or None
        self._location_known = self._location is not None
        self.emulator_host = os.environ.get(EMULATOR_ENV) or None
        self.client = client or self._make_client()
        if scripts_bind_parameters is None:
            # bqemulator 1.4.0 runs scripts without their parameters (tests/bigquery pins it).
            scripts_bind_parameters = self.emulator_host is None
        self.scripts_bind_parameters = scripts_bind_parameters
        if partition_times_tracked is None:
            # bqemulator 1.4.0 gives every partition in INFORMATION_SCHEMA.PARTITIONS the table's
            # own last-modified time (storage/partition_state.py), which a DELETE does not move:
            # changes would go unseen.
            partition_times_tracked = self.emulator_host is None
        self.partition_times_tracked = partition_times_tracked
        if table_times_tracked is None:
            table_times_tracked = self.emulator_host is None or self.EMULATOR_TRACKS_TABLE_TIMES
        self.table_times_tracked = table_times_tracked
        self.monotonic = monotonic
        self._stamp_read: tuple[float, str] | None = None
        self._billed = 0

    def _make_client(self) -> bigquery.Client:
        if self.emulator_host:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            return bigquery.Client(
                project=self.project,
                credentials=AnonymousCredentials(),
                client_options=ClientOptions(api_endpoint=f"http://{self.emulator_host}"),
                location=self._location,
            )
        from google.auth.exceptions import DefaultCredentialsError

        try:
            return bigquery.Client(project=self.project, location=self._location)
        except DefaultCredentialsError as exc:
            raise BadInput(
                "no Google credentials for BigQuery (Application Default Credentials): run "
                "'gcloud auth application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
            ) from exc

    def describe(self) -> str:
        where = f" (emulator at {self.emulator_host})" if self.emulator_host else ""
        return f"BigQuery project {self.project}{where}"

    @classmethod
    def url_of(cls, location: str) -> str:
        return f"bigquery://{location}"

    @property
    def url(self) -> str:
        return self.url_of(self.project)

    def name_ref(self, dataset: str, table: str) -> str:
        return f"`{self.project}.{dataset}.{table}`"

    def table_schema(self, dataset: str, table: str) -> list[Column] | None:
        try:
            remote = self.client.get_table(
                f"{self.project}.{dataset}.{table}", retry=API_RETRY, timeout=self.settings.query_timeout_s
            )
        except NotFound:
            return None
        return [
            Column(field.name, _TYPE_NAMES.get(field.field_type, field.field_type), field.mode == "REQUIRED")
            for field in remote.schema
        ]

    def change_stamp(self) -> str | None:
        """Every stage table's last-modified time, rows and streaming buffer, from ``tables.get``
        (metadata: no job, no bytes billed). Any write moves it: DML, loads, streamed rows. None
        where writes do not move it (``table_times_tracked`` false: the emulator)."""
        if not self.table_times_tracked:
            return None
        now = self.monotonic()
        if self._stamp_read is not None and now - self._stamp_read[0] < STAMP_REUSE_S:
            return self._stamp_read[1]
        parts = []
        for stage in self.settings.pipeline.stages:
            table_id = self._stage_table_id(stage)
            try:
                found = self.client.get_table(
                    table_id, retry=API_RETRY, timeout=self.settings.query_timeout_s
                )
            except NotFound:
                parts.append(f"{table_id} missing")
                continue
            buffer = found.streaming_buffer
            streamed = f"{buffer.estimated_rows}@{buffer.oldest_entry_time}" if buffer is not None else "-"
            modified = found.modified.isoformat() if found.modified is not None else "-"
            parts.append(f"{table_id} {modified} {found.num_rows} {streamed}")
        stamp = "\n".join(parts)
        self._stamp_read = (now, stamp)
        return stamp

    def partition_times(self, stages, start: dt.date, end: dt.date) -> dict[PartitionKey, dt.datetime] | None:
        """LAST_MODIFIED_TIME of each date partition of the stages' tables in [start, end]: one query
        of the datasets' ``INFORMATION_SCHEMA.PARTITIONS`` views (metadata, not the tables' rows)."""
        if not self.partition_times_tracked:
            return None
        by_table: dict[tuple[str, str], list[str]] = {}
        for stage in stages:
            by_table.setdefault((self.settings.dataset_name(stage.dataset), stage.table), []).append(
                stage.name
            )
        if not by_table:
            return {}
        rows = self.query(*self._partition_times_query(set(by_table), start, end))
        times: dict[PartitionKey, dt.datetime] = {}
        for dataset, table, partition, changed_at in zip(
            rows["table_schema"], rows["table_name"], rows["partition_id"], rows["last_modified_time"]
        ):
            day = dt.datetime.strptime(partition, "%Y%m%d").date()
            for stage in by_table.get((dataset, table), ()):
                times[(stage, day)] = pd.Timestamp(changed_at).to_pydatetime()
        return times

    def _partition_times_query(
        self, tables: set[tuple[str, str]], start: dt.date, end: dt.date
    ) -> tuple[str, dict[str, Any]]:
        """The template and parameters of :meth:`partition_times` for (dataset, table) pairs."""
        datasets = sorted({dataset for dataset, _ in tables})
        params: dict[str, Any] = {"first": f"{start:%Y%m%d}", "last": f"{end:%Y%m%d}"}
        for number, dataset in enumerate(datasets):
            params[f"tables_{number}"] = sorted({table for ds, table in tables if ds == dataset})
        return self.partitions_sql(datasets), params

    def _partition_bounds_query(self, stage) -> tuple[str, dict[str, Any]]:
        dataset = self.settings.dataset_name(stage.dataset)
        return (
            partition_bounds_sql(self.name_ref(dataset, "INFORMATION_SCHEMA.PARTITIONS")),
            {"table": stage.table, "first": "00000000", "last": "99999999"},
        )

    def metadata_statements(self, stages, start: dt.date, end: dt.date):
        """The bounds of the reference table, and (where BigQuery's partition times are trusted) when
        each partition of the range last changed: what a refresh sends instead of a fingerprint."""
        statements = [("partition bounds", *self._partition_bounds_query(self.settings.pipeline.reference))]
        if not self.partition_times_tracked:
            return None
        tables = {(self.settings.dataset_name(stage.dataset), stage.table) for stage in stages}
        statements.append(("partition times", *self._partition_times_query(tables, start, end)))
        return statements

    def partition_bounds(self, stage) -> DateBounds | None:
        """The first and last daily partition with rows, from ``INFORMATION_SCHEMA.PARTITIONS`` (one
        metadata query: the table's rows are not read, so ``require_partition_filter`` is no bar).
        None for a table that is not partitioned by day (its rows are then read, unfiltered)."""
        row = self.query(*self._partition_bounds_query(stage)).iloc[0]
        if not pd.isna(row["unpartitioned"]) and int(row["unpartitioned"]):
            return None
        first, last = row["first_id"], row["last_id"]
        if pd.isna(first) or pd.isna(last):
            return DateBounds(None, None)
        if len(first) != 8 or len(last) != 8:  # partitioned by month or year: ids say too little
            return None
        return DateBounds(
            dt.datetime.strptime(first, "%Y%m%d").date(), dt.datetime.strptime(last, "%Y%m%d").date()
        )

    def partitions_sql(self, datasets: list[str]) -> str:
        """One query of the datasets' PARTITIONS views: ``@tables_N`` are dataset N's table names,
        ``@first`` and ``@last`` the range as partition ids (YYYYMMDD). ``__NULL__`` and
        ``__UNPARTITIONED__`` sort after every digit string, so the range leaves them out."""
        return "\nUNION ALL\n".join(
            "SELECT table_schema, table_name, partition_id, last_modified_time "
            f"FROM {self.name_ref(dataset, 'INFORMATION_SCHEMA.PARTITIONS')} "
            f"WHERE table_name IN UNNEST(@tables_{number}) AND partition_id BETWEEN @first AND @last"
            for number, dataset in enumerate(datasets)
        )

    def scratch_dataset_labels(self, dataset: str) -> dict[str, str] | None:
        try:
            found = self.client.get_dataset(
                f"{self.project}.{dataset}", retry=API_RETRY, timeout=self.settings.query_timeout_s
            )
        except NotFound:
            return None
        return dict(found.labels or {})

    def create_scratch_dataset(self, dataset: str, labels) -> None:
        self._count()
        target = bigquery.Dataset(f"{self.project}.{dataset}")
        target.location = self.location or DEFAULT_DATASET_LOCATION
        target.labels = {key: _label(value) for key, value in labels.items()}
        self._location = target.location
        # exists_ok=False: a dataset of that name made meanwhile by someone else is never adopted.
        self.client.create_dataset(
            target, exists_ok=False, retry=API_RETRY, timeout=self.settings.query_timeout_s
        )

    def drop_scratch_dataset(self, dataset: str, labels) -> None:
        found = self.scratch_dataset_labels(dataset)
        if found is None:
            return
        if not {key: _label(value) for key, value in labels.items()}.items() <= found.items():
            raise BadInput(
                f"{self.project}.{dataset} is not labelled as made by this tool; it is left as it is"
            )
        self._count()
        self.client.delete_dataset(
            f"{self.project}.{dataset}",
            delete_contents=True,
            not_found_ok=True,
            retry=API_RETRY,
            timeout=self.settings.query_timeout_s,
        )

    def _table_id(self, table: Table) -> str:
        return f"{self.project}.{self.dataset(table)}.{table.name}"

    @property
    def location(self) -> str | None:
        """Where jobs run: the configured ``bigquery_location``, else the analytics dataset's own
        location (read once from its metadata), else None while that dataset does not exist yet.

        A job sent to another location than its tables' fails as "not found", so a fixed default
        ("US") would fail every job on datasets elsewhere. Read once (a missing dataset too: only
        the demo builder goes on without one, and it sets the location as it makes the datasets)."""
        if not self._location_known:
            try:
                dataset = self.client.get_dataset(
                    f"{self.project}.{self.settings.analytics_dataset}",
                    retry=API_RETRY,
                    timeout=self.settings.query_timeout_s,
                )
                self._location = dataset.location or None
            except NotFound:
                self._location = None
            self._location_known = True
        return self._location

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
        # The server stops a job that outlives the client's wait (job_deadlines: one rule).
        limit = job_deadlines(self.settings).job_timeout_ms
        if limit and not dry_run:
            options["job_timeout_ms"] = limit
        if create_session:
            options["create_session"] = True
        if session_id:
            options["connection_properties"] = [bigquery.ConnectionProperty("session_id", session_id)]
        return bigquery.QueryJobConfig(**options)

    def _job(self, statement: str, params: dict, labels: dict | None, **session: Any):
        """Send one job (a new job id) and wait for it; the client retries API calls, never the job."""
        job = self.client.query(
            statement,
            job_config=self.job_config(used_params(statement, params), labels, **session),
            job_id_prefix=job_id_prefix(labels),
            location=self.location,
            retry=API_RETRY,
            job_retry=None,
            timeout=self.settings.query_timeout_s,
        )
        return self._wait(job)

    @property
    def bytes_billed(self) -> int:
        """Bytes BigQuery billed for this adapter's query jobs (``totalBytesBilled`` of each, a
        failed job's too: BigQuery bills what it scanned)."""
        return self._billed

    def _bill(self, job) -> None:
        try:
            billed = int(getattr(job, "total_bytes_billed", None) or 0)
        except (TypeError, ValueError):
            billed = 0
        with self._lock:
            self._billed += billed

    def _wait(self, job, *, query: bool = True):
        """Wait for a job; if waiting fails (not the job), re-attach to the same job and wait again.

        (job, rows). The job's own failure, or the wait running out of time (the job is then
        stopped by BigQuery at ``job_timeout_ms``), ends the attempt: that is the retry policy's
        to judge. Each wait retries its API calls for :data:`POLL_DEADLINE_S` at most; then
        ``jobs.get`` tells a failed job (the attempt ends) from a failed poll (wait again).
        Re-attaching is tenacity too, bounded by :data:`REATTACH_ATTEMPTS`."""
        current = job
        waits = 0

        def waited():
            nonlocal current, waits
            if waits:  # the last wait failed: ask for the same job again
                current = self.client.get_job(
                    current.job_id,
                    project=current.project,
                    location=current.location,
                    retry=API_RETRY,
                    timeout=self.settings.query_timeout_s,
                )
            waits += 1
            # Only query jobs take job_retry (load jobs are never re-run by the client anyway).
            never_rerun = {"job_retry": None} if query else {}
            return current.result(
                retry=POLL_RETRY, timeout=job_deadlines(self.settings).wait_s, **never_rerun
            )

        def poll_failed(exc: BaseException) -> bool:
            return not isinstance(exc, TimeoutError) and not job_failed(current) and is_transient(exc)

        def tell(state: tenacity.RetryCallState) -> None:
            log.warning(
                "waiting for job %s failed (%s); re-attaching", current.job_id, state.outcome.exception()
            )

        try:
            rows = tenacity.Retrying(
                stop=tenacity.stop_after_attempt(REATTACH_ATTEMPTS),
                wait=tenacity.wait_exponential(multiplier=1, max=30),
                retry=tenacity.retry_if_exception(poll_failed),
                sleep=self.sleep,
                before_sleep=tell,
                reraise=True,
            )(waited)
        finally:
            self._bill(current)  # the job as last seen (a re-attached one knows its statistics)
        return current, rows

    def _query(self, statements, params, labels: dict | None = None, **options: Any) -> pd.DataFrame:
        (statement,) = statements
        _, rows = self._job(statement, params, labels)
        # The Storage API client would dial Google directly; plain REST paging suffices here.
        frame = rows.to_dataframe(create_bqstorage_client=False)
        date_columns = [field.name for field in rows.schema if field.field_type == "DATE"]
        return dates_to_python(frame, date_columns)

    def _execute(self, statements, params, labels: dict | None = None, **options: Any) -> None:
        (script,) = statements
        self._stamp_read = None  # this process writes: its next look must see it
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

        def run_one(number: int, statement: str) -> None:
            nonlocal session_id
            if number:
                self._count()
            job, _ = self._job(
                statement, params, labels, session_id=session_id, create_session=session_id is None
            )
            session_id = session_id or _session_id(job)

        def roll_back() -> None:
            if session_id:
                self._roll_back(session_id, labels)

        self._run_script(statements, run_one, roll_back)

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
        return sum(size for _, size in self.estimate_statements(template, params))

    def estimate_statements(self, template: str, params: Params | None = None) -> list[tuple[str, int]]:
        """A dry run of each statement of the template (transaction control left out)."""
        params = dict(params or {})
        sizes = []
        for statement in split_statements(self.prepare(template)[0]):
            if keyword(statement) in TRANSACTION_CONTROL:
                continue
            self._count()
            job = self.client.query(
                statement,
                # Dry runs are free, but labelled too: INFORMATION_SCHEMA.JOBS lists them.
                job_config=self.job_config(
                    used_params(statement, params), self._labelled({}).get("labels"), dry_run=True
                ),
                location=self.location,
                retry=API_RETRY,
                job_retry=None,
                timeout=self.settings.query_timeout_s,
            )
            sizes.append((statement, int(job.total_bytes_processed or 0)))
        return sizes

    # -- datasets, tables, loads --------------------------------------------------------------

    def _create_dataset(self, dataset: str) -> None:
        self._count()
        target = bigquery.Dataset(f"{self.project}.{dataset}")
        target.location = self.location or DEFAULT_DATASET_LOCATION
        self._location = target.location
        self.client.create_dataset(
            target, exists_ok=True, retry=API_RETRY, timeout=self.settings.query_timeout_s
        )

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
                    self._table_id(table), retry=API_RETRY, timeout=self.settings.query_timeout_s
                )
            except NotFound:
                continue
            found[table.name] = dict(remote.labels or {})
        return found

    def health_checks(self):
        """Datasets and their location, the tables' partitioning and clustering, permissions by dry
        runs (free: nothing runs, nothing is billed). Reads only."""
        locations: dict[str, str | None] = {}
        for role, dataset in self.settings.datasets.items():
            name = f"{self.project}.{dataset}"
            try:
                found = self.client.get_dataset(name, retry=API_RETRY, timeout=self.settings.query_timeout_s)
            except NotFound:
                yield Check(
                    f"dataset {dataset}",
                    FAIL,
                    f"{name} does not exist: set BACKFILL_{role.upper()}_DATASET to the pipeline's dataset",
                )
                continue
            except (Forbidden, GoogleAPICallError) as exc:
                yield Check(f"dataset {dataset}", FAIL, explain(exc) or _one_line(exc))
                continue
            locations[dataset] = found.location
            yield Check(f"dataset {dataset}", OK, f"{name} in {found.location or 'an unnamed location'}")
        yield from self._location_checks(locations)
        for stage in self.settings.pipeline.stages:
            yield from self._layout_checks(stage)
        yield from self._permission_checks()

    def _location_checks(self, locations: dict[str, str | None]):
        where = sorted({location or "?" for location in locations.values()})
        configured = self.settings.bigquery_location
        if len(where) > 1:
            listed = ", ".join(f"{dataset} in {location}" for dataset, location in locations.items())
            yield Check(
                "location",
                FAIL,
                f"the datasets are in different locations ({listed}): queries join them, so move them to one",
            )
        elif configured and where and configured.lower() != where[0].lower():
            yield Check(
                "location",
                FAIL,
                f"jobs are configured to run in {configured} but the datasets are in {where[0]}: "
                "set bigquery_location to theirs, or leave it empty to follow them",
            )
        elif where:
            how = "configured" if configured else "from the datasets' metadata"
            yield Check("location", OK, f"jobs run in {self.location or where[0]} ({how})")

    def _layout_checks(self, stage):
        """A stage's table partitioned by its date column and clustered by its player column."""
        table_id = self._stage_table_id(stage)
        try:
            remote = self.client.get_table(table_id, retry=API_RETRY, timeout=self.settings.query_timeout_s)
        except NotFound:
            return  # reported with the columns
        partitioned = _partition_field(remote)
        clustered = list(remote.clustering_fields or [])
        d, p = stage.date_column, stage.player_column
        if partitioned != d:
            yield Check(
                f"partitioning {stage.table}",
                WARN,
                f"{table_id} is not partitioned by {d}: every date's replace and "
                f"coverage read scans the whole table (recreate it with PARTITION BY {d})",
            )
        elif p not in clustered:
            yield Check(
                f"partitioning {stage.table}",
                WARN,
                f"{table_id} is not clustered by {p} (CLUSTER BY {p} lowers the bytes read)",
            )
        else:
            yield Check(f"partitioning {stage.table}", OK, f"partitioned by {d}, clustered by {p}")
        yield self._partition_filter_check(stage, table_id, remote, partitioned)
        buffer = remote.streaming_buffer
        if buffer is not None and (buffer.estimated_rows or 0) > 0:
            yield Check(
                f"streaming buffer {stage.table}",
                WARN,
                f"{table_id} has about {buffer.estimated_rows} rows in its streaming buffer (oldest "
                f"{buffer.oldest_entry_time or 'unknown'}): BigQuery refuses DML on them until it flushes "
                "them (up to 90 minutes), so backfills and stale deletes of those dates fail as 'later'; "
                "rerun them after the flush, or load with batch jobs instead of streaming",
            )

    def write_checks(self):
        """Before any write, beside the columns: a partition filter the console cannot meet, and the
        permission to write each stage table (``tables.testIamPermissions``). Metadata only, no job."""
        for stage in self.settings.pipeline.stages:
            table_id = self._stage_table_id(stage)
            try:
                remote = self.client.get_table(
                    table_id, retry=API_RETRY, timeout=self.settings.query_timeout_s
                )
            except NotFound:
                continue  # reported with the columns
            yield self._partition_filter_check(stage, table_id, remote, _partition_field(remote))
        yield from self._iam_write_checks(set())

    def _stage_table_id(self, stage) -> str:
        """``PROJECT.DATASET.TABLE`` of a stage's table (its dataset renamed as the settings say)."""
        return f"{self.project}.{self.settings.dataset_name(stage.dataset)}.{stage.table}"

    def _partition_filter_check(self, stage, table_id: str, remote, partitioned: str | None) -> Check:
        """Whether the table requires a partition filter, and whether the console's reads meet it."""
        name = f"partition filter {stage.table}"
        if not remote.require_partition_filter:
            return Check(name, OK, "no partition filter required (the console filters by date anyway)")
        if partitioned != stage.date_column:
            return Check(
                name,
                FAIL,
                f"{table_id} requires a filter on {partitioned or 'its partitioning column'} but the console "
                f"filters stage {stage.name} by {stage.date_column}: set the stage's date_column to "
                f"{partitioned} in the pipeline file, or ALTER TABLE ... SET OPTIONS "
                "(require_partition_filter = false)",
            )
        return Check(
            name,
            OK,
            f"requires a filter on {stage.date_column}: every read the console sends filters it, and date "
            "bounds come from INFORMATION_SCHEMA.PARTITIONS (see 'permission to list partitions')",
        )

    def _permission_checks(self):
        """Dry runs of a read of every table and of a delete on the tables the backfill writes (or
        ``tables.testIamPermissions`` where the endpoint answers it), and of the partitions query."""
        yield from self._partitions_permission_checks()
        writes_known: set[str] = set()
        yield from self._iam_write_checks(writes_known)
        pipeline = self.settings.pipeline
        probes = [
            (
                f"read {stage.table}",
                f"SELECT COUNT(*) AS n FROM {{{stage.name}}} WHERE {stage.date_column} = @d",
            )
            for stage in pipeline.stages
        ]
        probes += [
            (f"write {stage.table}", f"DELETE FROM {{{stage.name}}} WHERE {stage.date_column} = @d")
            for stage in pipeline.backfillable
            if stage.name not in writes_known
        ]
        for name, template in probes:
            try:
                self.estimate_bytes(template, {"d": dt.date(2000, 1, 1)})
            except NotFound:
                continue  # the table is missing: reported with the columns
            except GoogleAPICallError as exc:
                yield Check(f"permission to {name}", FAIL, explain(exc) or _one_line(exc))
            else:
                yield Check(f"permission to {name}", OK, "a dry run is accepted")

    def _partitions_permission_checks(self):
        """The console's date bounds come from each reference dataset's INFORMATION_SCHEMA.PARTITIONS,
        which needs bigquery.tables.list on the dataset beside reading the tables."""
        ref = self.settings.pipeline.reference
        dataset = self.settings.dataset_name(ref.dataset)
        try:
            self.estimate_bytes(*self._partition_bounds_query(ref))
        except NotFound:
            return
        except GoogleAPICallError as exc:
            yield Check(
                "permission to list partitions",
                FAIL,
                f"INFORMATION_SCHEMA.PARTITIONS of {dataset} is refused ({_one_line(exc)[:160]}): grant "
                "bigquery.tables.list on the dataset (roles/bigquery.metadataViewer or dataViewer); the "
                "console reads its date bounds there",
            )
        else:
            yield Check("permission to list partitions", OK, f"INFORMATION_SCHEMA.PARTITIONS of {dataset}")

    def _iam_write_checks(self, known: set[str]):
        """``tables.testIamPermissions`` for bigquery.tables.updateData on each written table; where
        the endpoint does not answer it (the emulator), the dry-run DELETE decides instead. The stages
        answered here are added to ``known``."""
        for stage in self.settings.pipeline.backfillable:
            table_id = self._stage_table_id(stage)
            try:
                answer = self.client.test_iam_permissions(
                    table_id, [UPDATE_DATA], retry=API_RETRY, timeout=self.settings.query_timeout_s
                )
            except NotFound:
                known.add(stage.name)  # the table is missing: reported with the columns
                continue
            except GoogleAPICallError:
                continue  # not answered here: the dry run decides
            known.add(stage.name)
            if UPDATE_DATA in (answer or {}).get("permissions", []):
                yield Check(f"permission to write {stage.table}", OK, f"{UPDATE_DATA} granted")
            else:
                yield Check(
                    f"permission to write {stage.table}",
                    FAIL,
                    f"the account lacks {UPDATE_DATA} on {table_id}: grant roles/bigquery.dataEditor on "
                    f"dataset {self.settings.dataset_name(stage.dataset)} (README, IAM roles)",
                )

    def label_tables(self, labels: dict[str, str]) -> None:
        """Set labels on the three tables (which must exist)."""
        for table in TABLES.values():
            target = bigquery.Table(self._table_id(table))
            target.labels = {key: _label(value) for key, value in labels.items()}
            self.client.update_table(
                target, ["labels"], retry=API_RETRY, timeout=self.settings.query_timeout_s
            )

    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        self._count()
        self._stamp_read = None
        buffer = io.BytesIO()
        frame[list(table.column_names)].to_parquet(buffer, index=False)
        buffer.seek(0)
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            labels={
                key: _label(value)
                for key, value in (JOB_LABELS | dict(self._labelled({}).get("labels") or {})).items()
            },
        )
        # The upload keeps the client's own bounded retries of its requests (an API-call layer).
        job = self.client.load_table_from_file(
            buffer,
            self._table_id(table),
            job_config=config,
            job_id_prefix=job_id_prefix(None),
            location=self.location,
            timeout=self.settings.query_timeout_s,
        )
        self._wait(job, query=False)

    def close(self) -> None:
        self.client.close()


_TYPE_NAMES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"}
"""Legacy type names the API reports for the schema's GoogleSQL types."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(getattr(exc, "message", None) or exc).split())[:300]


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


def _partition_field(remote) -> str | None:
    """The column a table is partitioned by, or None."""
    return getattr(remote.time_partitioning, "field", None) if remote.time_partitioning else None
