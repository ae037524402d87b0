"""Query jobs and bytes billed per page view (cold, rerun, after a write), per check and per 31-date
backfill on BigQuery, counted from the jobs the official client really sends (issue 22).

The demo is built into the local BigQuery emulator, then every request any ``bigquery.Client``
makes is recorded at the client's connection (``JSONConnection.api_request``, the outer boundary),
while the product's own code runs: the console's page reads (the calls ``ui/data.py`` makes, cached
by the warehouse's fingerprint as it caches them, without Streamlit), ``backfill.watch.run_check``
and ``backfill.launch.run_here``.

Bytes billed are computed from each recorded statement as BigQuery's on-demand pricing bills it:
at least 10 MB for every table a statement references (``backfill.cost_report.tables_referenced``),
each statement of a script apart. The emulator reports 0 bytes processed, so the figure here is that
per-table minimum alone: a floor. On a real project a statement reading more than 10 MB of a table
costs more.

Where the emulator differs from BigQuery the page reads are set to behave as on BigQuery, and each
difference is said here:

- bqemulator 1.4.0 does not move a table's last-modified time on DML (it does on a metadata patch),
  and gives every partition its table's time. The page's adapter is told to trust those times, as
  it does on BigQuery (``table_times_tracked``, ``partition_times_tracked``), and after the write
  the bench patches the description of the tables the run wrote (a ``tables.patch``, not recorded)
  so their time moves as BigQuery's would after the DML.
- It runs a script's parameters only one statement at a time, so a replace goes as one job per
  statement in a session. BigQuery's script form sends the session's statements as one job and bills
  its statements one by one: the floor is the same; the jobs column counts the script form (a
  session is one job) and the emulator's own count is given beside it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import sqlglot
from google.cloud._http import JSONConnection

from backfill import cost, coverage, freshness, stale
from backfill.alerts import AlertSecrets
from backfill.config import Settings
from backfill.cost_labels import job_labels
from backfill.cost_report import MIN_BILLED_PER_TABLE, tables_referenced
from backfill.coverage_snapshot import CoverageSnapshot
from backfill.demo import build_demo_in_place
from backfill.launch import run_here
from backfill.request import BackfillRequest
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from backfill.watch import run_check
from bench.bigquery_bytes import _wait
from tests.bigquery.conftest import EMULATOR, PROJECT, emulator_command

WHO = "bench"
WRITE_DATE = dt.date(2021, 11, 15)
"""The one date written before the page view "after a write"."""
CHECK_WEEK = (dt.date(2021, 12, 1), dt.date(2021, 12, 7))
DECEMBER = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))


@dataclass(frozen=True)
class Job:
    """One ``jobs.insert`` as it reached the wire."""

    sql: str
    dry_run: bool
    in_session: bool
    """Sent into an existing session (a later statement of a script the emulator runs one by one)."""
    labels: dict[str, str]


def billed_floor(sql: str) -> int:
    """Bytes BigQuery bills a job at least: 10 MB per table each of its statements references."""
    statements = [s for s in sqlglot.parse(sql, read="bigquery") if s is not None]
    return sum(
        MIN_BILLED_PER_TABLE * tables_referenced(statement.sql(dialect="bigquery"))
        for statement in statements
    )


@dataclass
class Work:
    """The jobs one piece of work sent."""

    key: str
    name: str
    jobs: list[Job] = field(default_factory=list)

    @property
    def queries(self) -> list[Job]:
        return [job for job in self.jobs if not job.dry_run]

    @property
    def query_jobs(self) -> int:
        """Query jobs in BigQuery's script form (a session's later statements are part of its script)."""
        return sum(1 for job in self.queries if not job.in_session)

    @property
    def emulator_jobs(self) -> int:
        return len(self.queries)

    @property
    def dry_runs(self) -> int:
        """Dry runs (cost estimates): free."""
        return len(self.jobs) - len(self.queries)

    @property
    def bytes_billed(self) -> int:
        return sum(billed_floor(job.sql) for job in self.queries)


@contextlib.contextmanager
def recording(into: list[Job]) -> Iterator[list[Job]]:
    """Every ``jobs.insert`` any client sends in the block, appended to ``into``."""
    real = JSONConnection.api_request

    def api_request(self, method, path, **kwargs):
        if method == "POST" and str(path).endswith("/jobs"):
            configuration = kwargs["data"]["configuration"]
            properties = configuration["query"].get("connectionProperties") or []
            into.append(
                Job(
                    configuration["query"]["query"],
                    bool(configuration.get("dryRun")),
                    any(p.get("key") == "session_id" for p in properties),
                    dict(configuration.get("labels") or {}),
                )
            )
        return real(self, method, path, **kwargs)

    with mock.patch.object(JSONConnection, "api_request", api_request):
        yield into


class Console:
    """What the Overview page reads (the Coverage page reads a subset of it), cached by the
    warehouse's fingerprint as ``ui/data.py`` caches it: one fresh server."""

    def __init__(self, settings: Settings, clock: Callable[[], float]):
        self.settings = settings
        self.warehouse = BigQueryWarehouse(
            settings, PROJECT, table_times_tracked=True, partition_times_tracked=True, monotonic=clock
        )
        self.warehouse.base_labels = job_labels("page")
        self.snapshot = CoverageSnapshot.persisted(self.warehouse, settings)
        self.cache: dict[tuple, object] = {}

    def _cached(self, key: tuple, compute: Callable[[], object]) -> object:
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    def _refresh_cost(self) -> object:
        """The sidebar's note, as ``ui/data.py`` makes it: the bounds again, then dry runs."""
        again = coverage.data_bounds(self.warehouse)
        if again is None:
            return None
        return cost.estimate_note(lambda: cost.coverage_estimate(self.warehouse, self.settings, *again))

    def view(self) -> None:
        """One rerun of the Overview page: the fingerprint, then each read unless cached at it."""
        warehouse, settings = self.warehouse, self.settings
        token = freshness.warehouse_fingerprint(warehouse, settings.pipeline)
        bounds = self._cached(("bounds", token), lambda: coverage.data_bounds(warehouse))
        assert isinstance(bounds, tuple), "the demo holds games"
        start, end = bounds
        self._cached(("refresh_cost", token), self._refresh_cost)
        self._cached(("coverage", start, end, token), lambda: self.snapshot.coverage(start, end))
        self._cached(
            ("stale", start, end, token), lambda: stale.stale_counts(warehouse, settings, start, end)
        )


def measure_on(settings: Settings, folder: Path) -> list[Work]:
    """The five pieces of work on a demo already built in the emulator ``settings`` name."""
    skew = [0.0]  # the page's clock, moved a minute between views (its change stamp is reread)
    console = Console(settings, lambda: time.monotonic() + skew[0])
    writer = BigQueryWarehouse(settings, PROJECT)
    done: list[Work] = []

    def record(key: str, name: str, action: Callable[[], object]) -> None:
        work = Work(key, name)
        with recording(work.jobs):
            action()
        done.append(work)
        skew[0] += 60.0

    record("page_cold", "Page view, cold (a fresh server)", console.view)
    record("page_rerun", "Page view, rerun (data unchanged)", console.view)
    request = BackfillRequest.build(settings, dates=[WRITE_DATE], today=lambda: DECEMBER[1])
    run_here(settings, request, WHO, warehouse=writer)
    for stage in settings.pipeline.backfillable:  # as BigQuery's DML would (see the module's note)
        table = writer.client.get_table(f"{PROJECT}.{settings.dataset_name(stage.dataset)}.{stage.table}")
        table.description = f"written {dt.datetime.now(dt.UTC).isoformat()}"
        writer.client.update_table(table, ["description"])
    record("page_after_write", f"Page view, after a write (a 1-date backfill of {WRITE_DATE})", console.view)

    checker = BigQueryWarehouse(
        settings.replace(cache_dir=str(folder / "check-cache")),
        PROJECT,
        table_times_tracked=True,
        partition_times_tracked=True,
    )
    checker.base_labels = job_labels("check", WHO)
    record(
        "check_7_dates",
        f"check {CHECK_WEEK[0]} to {CHECK_WEEK[1]} (a fresh process)",
        lambda: run_check(
            checker.settings, checker, *CHECK_WEEK, who=WHO, secrets=AlertSecrets(), sleep=lambda s: None
        ),
    )
    december = BackfillRequest.build(settings, start=DECEMBER[0], end=DECEMBER[1], today=lambda: DECEMBER[1])
    record(
        "backfill_31_dates",
        f"31-date backfill {DECEMBER[0]} to {DECEMBER[1]}",
        lambda: run_here(settings, december, WHO, warehouse=writer),
    )
    for warehouse in (console.warehouse, writer, checker):
        warehouse.close()
    return done


def measure() -> list[Work] | None:
    """The five pieces of work on a one-season demo in a fresh emulator, or None without it."""
    if not EMULATOR.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="bench-bqjobs-") as name:
        folder = Path(name)
        log = folder / "emulator.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("BQEMU_")}
        with log.open("wb") as out:
            process = subprocess.Popen(
                emulator_command(), cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        previous = os.environ.get(EMULATOR_ENV)
        try:
            os.environ[EMULATOR_ENV] = _wait(process, log)
            settings = Settings(
                warehouse=f"bigquery://{PROJECT}",
                ledger=str(folder / "ledger.sqlite"),
                cache_dir=str(folder / "cache"),
                retry_delays=(0.0, 0.0, 0.0),
            )
            builder = BigQueryWarehouse(settings, PROJECT)
            build_demo_in_place(builder, settings, seasons=1)
            builder.close()
            return measure_on(settings, folder)
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_ENV, None)
            else:
                os.environ[EMULATOR_ENV] = previous
            process.terminate()
            process.wait(timeout=30)
