"""The warehouse interface: one shape for the embedded DuckDB file and for BigQuery.

Callers hand over GoogleSQL templates and parameters; an adapter renders table names, translates the
dialect (cached), sends the statement and counts it. Differences between warehouses are class flags
and overridden hooks, never ``if warehouse == ...`` in callers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple

from backfill import faults
from backfill.config import Settings
from backfill.crashpoints import IN_TRANSACTION, crash_point
from backfill.errors import BadInput, TryLater, WarehouseRefused
from backfill.validate import check_identifier
from backfill.warehouse.schema import SQL_ALIASES, TABLES, Table

if TYPE_CHECKING:  # pandas and sqlglot load when first used: reading a URL stays instant
    import pandas as pd

    from backfill.pipeline import Stage
    from backfill.processors import Processor

Params = Mapping[str, Any]

_PARAM = re.compile(r"@([A-Za-z_][A-Za-z0-9_]*)")


def param_names(googlesql: str) -> set[str]:
    """Names of the ``@parameters`` a GoogleSQL statement uses."""
    return set(_PARAM.findall(googlesql))


OK, WARN, FAIL = "ok", "warn", "FAIL"
"""Outcomes of a readiness check (``python -m backfill doctor``)."""


class Column(NamedTuple):
    """One column of a table as the warehouse has it: GoogleSQL type name, and whether REQUIRED."""

    name: str
    kind: str
    required: bool


PartitionKey = tuple[str, dt.date]
"""(stage name, date): one date partition of a stage's table."""


class DateBounds(NamedTuple):
    """First and last date with rows in a table (both None when it has none)."""

    first: dt.date | None
    last: dt.date | None


class Check(NamedTuple):
    """One readiness check: its name, its outcome, and one line (what to fix when not ok)."""

    name: str
    status: str
    detail: str
    stage: str | None = None
    """The pipeline stage the check is about, where it is about one."""


TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})
"""First words of the statements that open and close a transaction in a script."""


def keyword(statement: str) -> str:
    """The first word of a statement, upper-cased (``BEGIN``, ``DELETE``, ...), comments skipped."""
    words = [line for line in statement.splitlines() if not line.lstrip().startswith("--")]
    return " ".join(words).split(None, 1)[0].upper() if words else ""


class Warehouse(ABC):
    """A warehouse holding the three pipeline tables."""

    kind: ClassVar[str]
    """Short name used by the factory and shown to users."""

    dialect: ClassVar[str]
    """sqlglot dialect that statements are translated to."""

    SUPPORTS_DRY_RUN: ClassVar[bool] = False
    """Whether :meth:`estimate_bytes` can ask the warehouse what a query would scan."""

    SUPPORTS_SCRATCH_DATASETS: ClassVar[bool] = False
    """Whether :meth:`create_scratch_dataset` and :meth:`drop_scratch_dataset` exist (``smoke``)."""

    CHANGE_POLL_S: ClassVar[float] = 0.0
    """The shortest interval at which a console may look whether other writers changed the
    warehouse (0: as often as it likes). Looking costs requests on a remote warehouse."""

    IN_LOCAL_FILES: ClassVar[bool] = False
    """Whether its warehouses live in local files (see :meth:`local_file`)."""

    ERRORS: ClassVar[faults.EngineErrors | None] = None
    """What this engine's errors mean (classes, reasons, messages), as data: registered with
    :mod:`backfill.faults` when the class is defined, which alone decides transient or permanent."""

    @classmethod
    @abstractmethod
    def parse_location(cls, url: str) -> str:
        """Where a URL of this adapter's scheme points (a path, a project); BadInput if malformed."""

    @classmethod
    def url_of(cls, location: str) -> str:
        """The URL a run records for the warehouse at ``location`` (the same from any directory)."""
        raise NotImplementedError(f"{cls.__name__} names no URL")

    @classmethod
    def local_file(cls, location: str) -> str | None:
        """The local file the warehouse lives in, if it is one (the demo is then built beside it and
        moved into place whole, and a missing file may be created with the demo on first start)."""
        return None

    @classmethod
    def check_exists(cls, location: str) -> None:
        """Refuse (BadInput) a target that must exist before it is opened (a typo must not create
        an empty warehouse); remote warehouses say so at their first request instead."""
        return None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        errors = cls.__dict__.get("ERRORS")
        if errors is not None:
            faults.register(errors)

    def __init__(self, settings: Settings):
        self.settings = settings
        for dataset in settings.datasets.values():
            check_identifier(dataset, "dataset")
        self._lock = threading.Lock()
        self._statements_issued = 0
        self._labels = threading.local()
        self.base_labels: dict[str, str] = {}
        """Labels on every request of this adapter (what it is for, who asked: see
        :mod:`backfill.cost_labels`); a :meth:`labels` block adds to them and wins."""

    # -- what callers use -------------------------------------------------------------------

    @property
    def bytes_billed(self) -> int | None:
        """Bytes the warehouse billed for this adapter's jobs since it was made (None where nothing
        is billed by the byte: DuckDB)."""
        return None

    @property
    def statements_issued(self) -> int:
        """How many statements (BigQuery: jobs) this adapter has sent since it was made."""
        return self._statements_issued

    def dataset(self, table: Table) -> str:
        return self.settings.datasets[table.role]

    def table_refs(self) -> dict[str, str]:
        """Quoted GoogleSQL reference of every table: the demo's by table name and short alias, and
        each pipeline stage's table by stage name (a stage's name wins over a demo alias)."""
        refs = {name: self.table_ref(table) for name, table in TABLES.items()}
        refs.update({alias: self.table_ref(table) for alias, table in SQL_ALIASES.items()})
        refs.update({stage.name: self.stage_ref(stage) for stage in self.settings.pipeline.stages})
        return refs

    def stage_ref(self, stage: Stage) -> str:
        """Quoted GoogleSQL reference of a stage's table (its dataset renamed as the settings say)."""
        return self.name_ref(self.settings.dataset_name(stage.dataset), stage.table)

    def check_stage_tables(self) -> None:
        """BadInput naming the first stage whose table is missing (a metadata lookup per stage),
        rather than a failing query later."""
        pipeline = self.settings.pipeline
        for stage in pipeline.stages:
            try:
                self.stage_columns(stage)
            except BadInput as missing:
                hint = (
                    f"create it (python -m backfill --pipeline {pipeline.path} demo creates the tables a "
                    "pipeline file declares with columns)"
                    if stage.columns
                    else "check the stage's table in the pipeline file"
                )
                raise BadInput(f"stage {stage.name}: {missing}; {hint}") from None

    def stage_columns(self, stage: Stage) -> list[tuple[str, bool]]:
        """(name, required) of each column of a stage's table; BadInput when it does not exist."""
        return self.table_columns(self.settings.dataset_name(stage.dataset), stage.table)

    def table_ref(self, table: Table) -> str:
        """Quoted GoogleSQL reference of one of the demo's tables."""
        return self.name_ref(self.dataset(table), table.name)

    def prepare(self, template: str) -> tuple[str, ...]:
        """Render a template's table names and translate it to this warehouse's dialect."""
        from backfill.warehouse import sql as sqlmod

        return sqlmod.translate(
            sqlmod.render(template, self.table_refs()), self.dialect, self.settings.cache_path("sql")
        )

    def query(self, template: str, params: Params | None = None, **options: Any) -> pd.DataFrame:
        """Run one SELECT and return its rows; DATE columns come back as ``datetime.date``."""
        self._count()
        with _refusals_explained():
            return self._query(self.prepare(template), dict(params or {}), **self._labelled(options))

    def execute(self, template: str, params: Params | None = None, **options: Any) -> None:
        """Run a statement, or a script of statements in one transaction, as one request."""
        self._count()
        with _refusals_explained():
            self._execute(self.prepare(template), dict(params or {}), **self._labelled(options))

    @contextlib.contextmanager
    def labels(self, **labels: str) -> Iterator[None]:
        """Label every request this thread sends in the block (BigQuery: job labels, which attribute
        cost); a request's own ``labels=`` add to them. Warehouses without labels ignore them."""
        outer = getattr(self._labels, "current", {})
        self._labels.current = outer | labels
        try:
            yield
        finally:
            self._labels.current = outer

    def _labelled(self, options: dict[str, Any]) -> dict[str, Any]:
        current = self.base_labels | getattr(self._labels, "current", {})
        if not current:
            return options
        return options | {"labels": current | dict(options.get("labels") or {})}

    def create_schema(self) -> None:
        """Create the datasets and the three tables where they are missing."""
        for dataset in sorted(set(self.settings.datasets.values())):
            self._create_dataset(dataset)
        for table in TABLES.values():
            columns = ", ".join(f"{name} {kind}" for name, kind in table.columns)
            ddl = f"CREATE TABLE IF NOT EXISTS {{{table.name}}} ({columns}){self._table_options(table)}"
            self.execute(ddl)

    def create_table(self, stage: Stage) -> None:
        """Create a pipeline stage's table from its declared ``columns`` if it is missing (and its
        dataset: a team's stage may live in a dataset of its own)."""
        self._create_dataset(self.settings.dataset_name(stage.dataset))
        columns = ", ".join(f"{name} {kind}" for name, kind in stage.columns)
        # The stage's own reference, not its {name}: the demo builder's adapter knows only the
        # built-in pipeline's stages, and a team's extra stage is not among them.
        self.execute(
            f"CREATE TABLE IF NOT EXISTS {self.stage_ref(stage)} ({columns}){self._stage_table_options(stage)}"
        )

    def _stage_table_options(self, stage: Stage) -> str:
        """Text after a stage table's column list (partitioning, clustering)."""
        return ""

    def drop_tables(self) -> None:
        """Drop the three tables (the demo builder starts from nothing)."""
        for table in TABLES.values():
            self.execute(f"DROP TABLE IF EXISTS {{{table.name}}}")

    def existing_tables(self) -> dict[str, dict[str, str]]:
        """The labels of each of the three tables that exists, by table name (missing ones left out).

        Used before building the demo in place, so it never drops tables it did not make.
        """
        raise NotImplementedError(f"{self.describe()} cannot list its tables")

    def write_checks(self) -> Iterable[Check]:
        """Doctor's checks of this warehouse that a write must also pass, beside the tables' columns
        (BigQuery: partition filters and write permission); none here."""
        return ()

    def label_tables(self, labels: dict[str, str]) -> None:  # noqa: B027 - a no-op where tables have no labels
        """Put labels on the three tables (BigQuery: table labels); warehouses without them ignore it."""

    # -- what adapters provide --------------------------------------------------------------

    @abstractmethod
    def name_ref(self, dataset: str, table: str) -> str:
        """Quoted GoogleSQL reference of a table by dataset and name (both validated identifiers)."""

    @abstractmethod
    def describe(self) -> str:
        """One line naming this warehouse for people (no secrets)."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The warehouse URL that reaches this warehouse again from any process (a run records it)."""

    @abstractmethod
    def load_frame(self, table: Table, frame: pd.DataFrame) -> None:
        """Append a DataFrame's rows (columns as in the table's schema) to a table."""

    @abstractmethod
    def _query(self, statements: tuple[str, ...], params: dict, **options: Any) -> pd.DataFrame:
        """Run a translated SELECT."""

    @abstractmethod
    def _execute(self, statements: tuple[str, ...], params: dict, **options: Any) -> None:
        """Run translated statements atomically."""

    @abstractmethod
    def _create_dataset(self, dataset: str) -> None:
        """Create a dataset (DuckDB: schema) if it is missing."""

    def _table_options(self, table: Table) -> str:
        """Text after a CREATE TABLE's column list (partitioning, clustering)."""
        return ""

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Hold whatever a series of requests can share (DuckDB: the open database) for a block."""
        yield

    def table_columns(self, dataset: str, table: str) -> list[tuple[str, bool]]:
        """(name, required) of each column of a table; BadInput when the table does not exist."""
        columns = self.table_schema(dataset, table)
        if columns is None:
            raise BadInput(f"table {dataset}.{table} does not exist in {self.describe()}")
        return [(column.name, column.required) for column in columns]

    def table_schema(self, dataset: str, table: str) -> list[Column] | None:
        """Every column of a table (name, GoogleSQL type, required), or None when it does not
        exist. Reads metadata only, not counted as a statement."""
        raise NotImplementedError(f"{self.describe()} cannot list its columns")

    def change_stamp(self) -> str | None:
        """A token that stays the same only while nothing was written to the warehouse, read without
        a request; None where the warehouse cannot tell (or cannot tell yet: a write just now)."""
        return None

    def partition_times(
        self, stages: Iterable[Stage], start: dt.date, end: dt.date
    ) -> dict[PartitionKey, dt.datetime] | None:
        """When each date partition of the stages' tables in [start, end] last changed, from the
        warehouse's own metadata (one cheap request), or None where the warehouse does not track
        it per partition. A partition absent from the answer has no rows."""
        return None

    def partition_bounds(self, stage: Stage) -> DateBounds | None:
        """First and last date with rows in a stage's table, from the warehouse's partition metadata
        (no read of the table itself, so no partition filter needed), or None where the warehouse
        keeps no such metadata: callers then read the date column."""
        return None

    def metadata_statements(
        self, stages: Iterable[Stage], start: dt.date, end: dt.date
    ) -> list[tuple[str, str, dict[str, Any]]] | None:
        """(label, template, parameters) of the metadata queries a console refresh of [start, end]
        sends in place of a fingerprint of the rows (:meth:`partition_bounds`,
        :meth:`partition_times`), for the cost report; None where it fingerprints the rows."""
        return None

    def changed_partitions(
        self, stages: Iterable[Stage], since: dt.datetime | None, start: dt.date, end: dt.date
    ) -> set[PartitionKey] | None:
        """(stage, date) partitions of the range changed after ``since`` (all of them when None),
        or None where :meth:`partition_times` is not supported. A partition emptied since then is
        absent, not changed: callers compare the partitions present with those they knew."""
        times = self.partition_times(stages, start, end)
        if times is None:
            return None
        return {key for key, changed_at in times.items() if since is None or changed_at > since}

    def scratch_dataset_labels(self, dataset: str) -> dict[str, str] | None:
        """The labels of a dataset, or None when it does not exist (``smoke``'s ownership test)."""
        raise NotImplementedError(f"{self.describe()} has no scratch datasets")

    def create_scratch_dataset(self, dataset: str, labels: Mapping[str, str]) -> None:
        """Create a new dataset with labels; fails if it exists (``smoke`` never adopts one)."""
        raise NotImplementedError(f"{self.describe()} has no scratch datasets")

    def drop_scratch_dataset(self, dataset: str, labels: Mapping[str, str]) -> None:
        """Drop a dataset and its tables, only if it carries ``labels`` (BadInput otherwise)."""
        raise NotImplementedError(f"{self.describe()} has no scratch datasets")

    def health_checks(self) -> Iterator[Check]:
        """The engine's own readiness checks (credentials, location, layout, permissions), reading
        only; the tables' columns are checked by :mod:`backfill.doctor` for every engine."""
        return iter(())

    def estimate_bytes(self, template: str, params: dict[str, Any] | None = None) -> int | None:
        """Bytes a query would process, where the warehouse can tell without running it."""
        return None

    def estimate_statements(
        self, template: str, params: Params | None = None
    ) -> list[tuple[str, int]] | None:
        """(statement as sent, bytes it would process) for each statement of a template (a script's
        transaction control left out), where the warehouse can tell without running it."""
        return None

    def batch_dates_bound(self, processor: Processor, dates: list[dt.date], now: dt.datetime) -> int | None:
        """The most of these dates one batch of the processor may take here (None: no bound).

        A warehouse that bills by the bytes a query processes (it can dry-run: BigQuery) keeps a
        batch under ``maximum_bytes_billed``: the batch is halved until its dry run fits. A
        statement that cannot be estimated sets no bound; the guard still refuses it when it runs.
        """
        budget = self.settings.maximum_bytes_billed
        if not self.SUPPORTS_DRY_RUN or not budget or processor.batch_statement(dates, now) is None:
            return None
        size = len(dates)
        while size > 1:
            template, params = processor.batch_statement(dates[:size], now) or ("", {})
            try:
                scanned = self.estimate_bytes(template, params)
            except Exception:  # noqa: BLE001 - no estimate, no bound
                return None
            if scanned is None or scanned <= budget:
                return size
            size //= 2
        return size

    def close(self) -> None:  # noqa: B027 - adapters without connections have nothing to release
        """Release connections; the adapter may be used again afterwards."""

    def readers_waiting(self) -> bool:
        """Whether another process waits for what this one holds (an embedded file); never for a
        warehouse any number of processes may use at once."""
        return False

    def make_way(self) -> bool:
        """Let a waiting reader in (close, and wait briefly for it); True when one came."""
        self.close()
        return False

    def _count(self) -> None:
        with self._lock:
            self._statements_issued += 1

    def _run_script(self, statements: tuple[str, ...], run_one, roll_back) -> None:
        """Run a script's statements in order with ``run_one(number, statement)``; if one fails
        inside a transaction the script opened, ``roll_back()`` before the error goes on.

        The one transaction loop of every adapter: it also holds the crash point where tests kill a
        backfill between a replace's DELETE and its INSERT (crash-and-resume, SPEC 5)."""
        in_transaction = False
        try:
            for number, statement in enumerate(statements):
                word = keyword(statement)
                run_one(number, statement)
                if word in TRANSACTION_CONTROL:
                    in_transaction = word == "BEGIN"
                elif in_transaction and word == "DELETE":
                    crash_point(IN_TRANSACTION)
        except BaseException:
            if in_transaction:
                roll_back()
            raise


@contextlib.contextmanager
def _refusals_explained() -> Iterator[None]:
    """A refusal that a setting or a permission must fix (the bytes-billed cap, a used-up quota,
    billing, access) goes on as one line that says what to change, the engine's error as its cause;
    one that only time lifts (rows in the streaming buffer) as :class:`TryLater`, saying when."""
    try:
        yield
    except Exception as exc:
        later = faults.later_hint(exc)
        if later is not None and not isinstance(exc, TryLater):
            raise TryLater(f"{later} ({_first_line(exc)})") from exc
        hint = faults.explain(exc)
        if hint is None or isinstance(exc, WarehouseRefused):
            raise
        raise WarehouseRefused(hint) from exc


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return (text.splitlines() or [""])[0][:200]


def dates_to_python(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Make the named DATE columns hold plain ``datetime.date`` values, as every adapter returns."""
    import pandas as pd

    for column in columns:
        frame[column] = pd.to_datetime(frame[column]).dt.date
    return frame
