"""``python -m backfill doctor``: is this warehouse ready for the console? Checks only, no writes.

One line per check, each saying what to fix when it is not fine: the connection (credentials), then
the adapter's own checks (BigQuery: datasets, location, partitioning and clustering, permissions by
dry runs), then the table of every stage of the pipeline file against what the console will ask of
it: the stage's date and player columns, its ``required_columns``, version, upstream-time and
written-at columns, its duplicate key and, for a ``sql`` processor, every column the built-in
statement writes (and no REQUIRED column it leaves unwritten, which would stop a backfill). Where a
stage's table is one of the demo's, its columns' types are checked too (``warehouse/schema.py``),
and a demo column no stage names is a warning only. A missing table or column fails (exit 1).
"""

from __future__ import annotations

from collections.abc import Iterator

from backfill import declared
from backfill.config import DEMO_DATASETS, Settings
from backfill.errors import BackfillError, BadInput
from backfill.pipeline import DEFAULT_WRITTEN_AT, Pipeline, Stage
from backfill.processors import BUILTINS
from backfill.warehouse.base import FAIL, OK, WARN, Check, Warehouse
from backfill.warehouse.schema import TABLES, Table


def _demo_table(stage: Stage) -> Table | None:
    """The demo's table that a stage's table is (same dataset and name), if it is one."""
    table = TABLES.get(stage.table)
    return table if table is not None and DEMO_DATASETS[table.role] == stage.dataset else None


def expected_columns(pipeline: Pipeline, stage: Stage) -> dict[str, tuple[str, str | None, str]]:
    """Column -> (status if missing, GoogleSQL type if known, why the console needs it), the most
    serious reason first: what a stage's table must have for the console to read and write it."""
    demo = _demo_table(stage)
    kinds = dict(demo.columns) if demo else {}
    kinds.update(dict(stage.columns))
    wanted: dict[str, tuple[str, str | None, str]] = {}

    def need(column: str | None, why: str, status: str = FAIL) -> None:
        if column and (column not in wanted or (wanted[column][0] == WARN and status == FAIL)):
            wanted[column] = (status, kinds.get(column), why)

    if demo:
        for column in demo.required:
            need(column, "required")
    need(stage.date_column, "the stage's date_column")
    need(stage.player_column, "the stage's player_column")
    for column in stage.required_columns:
        need(column, "in the stage's required_columns")
    need(stage.version_column, "the stage's version_column")
    need(stage.upstream_time_column, "the stage's upstream_time_column")
    need(stage.name_column, "the stage's name_column")
    need(stage.team_column, "the stage's team_column")
    if stage is not pipeline.reference:
        need(stage.written_at_column, _written_at_why(stage, "the stage's written_at_column"))
        for column in stage.key:
            need(column, "in the stage's duplicate_key")
    if any(s.upstream_time_column and pipeline.upstream(s) is stage for s in pipeline.backfillable):
        need(
            stage.written_at_column,
            _written_at_why(
                stage, "the written_at_column a downstream stage's upstream_time_column is compared with"
            ),
        )
    if stage.processor is not None and stage.processor.builtin is not None:
        for column in BUILTINS[stage.processor.builtin].COLUMNS:
            need(column, f"written by the built-in {stage.processor.builtin} statement")
    if demo:
        for column, _ in demo.columns:
            need(column, "optional, but the built-in SQL uses it", WARN)
    return wanted


def _written_at_why(stage: Stage, why: str) -> str:
    """``why`` for the written-at column, saying so where it is the default no file named."""
    return (
        f"{why}, {DEFAULT_WRITTEN_AT} unless the stage names one"
        if stage.written_at_column == DEFAULT_WRITTEN_AT
        else why
    )


def pipeline_check(warehouse: Warehouse) -> Check:
    """Whether the pipeline in use may write to this warehouse (:mod:`backfill.declared`)."""
    refusal = declared.refusal(warehouse)
    if refusal is not None:
        return Check("pipeline", FAIL, refusal)
    pipeline = warehouse.settings.pipeline
    if pipeline.path == "builtin":
        return Check("pipeline", OK, "the built-in demo pipeline, on a warehouse the demo built")
    return Check("pipeline", OK, f"the pipeline file {pipeline.path}")


def table_checks(warehouse: Warehouse) -> Iterator[Check]:
    """The table of every stage of the pipeline file: exists, has the columns the console needs,
    of the demo schema's types where it is a demo table; a ``sql`` stage leaves no REQUIRED column
    unwritten."""
    settings = warehouse.settings
    pipeline = settings.pipeline
    for stage in pipeline.stages:
        dataset = settings.dataset_name(stage.dataset)
        where = f"{dataset}.{stage.table}"
        name = f"table {stage.table}"
        found = warehouse.table_schema(dataset, stage.table)
        if found is None:
            demo = _demo_table(stage)
            fix = (
                f"point BACKFILL_{demo.role.upper()}_DATASET at the pipeline's dataset (or build a sandbox "
                "with: python -m backfill demo)"
                if demo
                else f"create it, or correct stages.{stage.name}.table in the pipeline file"
            )
            yield Check(name, FAIL, f"{where} does not exist (stage {stage.name}): {fix}", stage.name)
            continue
        columns = {column.name: column for column in found}
        problems: list[tuple[str, str]] = []
        for column, (status, kind, why) in expected_columns(pipeline, stage).items():
            if column not in columns:
                if kind:
                    fix = f"add it with ALTER TABLE {where} ADD COLUMN {column} {kind}"
                    problems.append((status, f"lacks column {column} {kind} ({why}): {fix}"))
                else:
                    fix = (
                        f"add it, or name the table's own column in stages.{stage.name} of the pipeline file"
                    )
                    problems.append((status, f"lacks column {column} ({why}): {fix}"))
            elif kind and columns[column].kind != kind.split()[0]:
                problems.append(
                    (FAIL, f"column {column} is {columns[column].kind}, expected {kind.split()[0]}")
                )
        if stage.processor is not None and stage.processor.builtin is not None:
            written = set(BUILTINS[stage.processor.builtin].COLUMNS)
            unwritten = [c.name for c in found if c.required and c.name not in written]
            if unwritten:
                problems.append(
                    (
                        FAIL,
                        f"has REQUIRED column{'s' if len(unwritten) > 1 else ''} {', '.join(unwritten)} that the "
                        f"built-in {stage.processor.builtin} statement does not write: a backfill would stop "
                        "(make them NULLABLE, or use a command processor for this stage)",
                    )
                )
        if not problems:
            yield Check(name, OK, f"{where} has every column stage {stage.name} needs", stage.name)
        for status, detail in problems:
            yield Check(name, status, f"{where} {detail}", stage.name)


def run_checks(warehouse: Warehouse) -> list[Check]:
    """Every check, in order; an error inside one check is that check's failure, not the end."""
    checks: list[Check] = [Check("warehouse", OK, warehouse.describe())]
    for source in (
        warehouse.health_checks,
        lambda: [pipeline_check(warehouse)],
        lambda: table_checks(warehouse),
    ):
        try:
            checks.extend(source())
        except BackfillError as exc:
            checks.append(Check("warehouse", FAIL, " ".join(str(exc).split())))
    return checks


def doctor(settings: Settings, warehouse: Warehouse) -> tuple[list[Check], int]:
    """(the checks, exit code): 0 when nothing failed (warnings allowed), 1 otherwise."""
    checks = run_checks(warehouse)
    return checks, 1 if any(check.status == FAIL for check in checks) else 0


def check_before_writing(warehouse: Warehouse) -> None:
    """The one preflight of every write (run, resume, rerun, stale delete; CLI and console alike):
    doctor's pipeline and table checks. BadInput with the first failure, naming the stage, the
    field and the column, before anything is written."""
    _refuse_failures(
        [pipeline_check(warehouse), *table_checks(warehouse), *warehouse.write_checks()],
        "refused before any write",
    )


def check_before_reading(warehouse: Warehouse) -> None:
    """Doctor's table checks before a read that uses every column a stage names (stale rows):
    BadInput naming the stage, the field and the column, rather than an engine's error later."""
    _refuse_failures(list(table_checks(warehouse)), "cannot read the stage tables")


def _refuse_failures(checks: list[Check], what: str) -> None:
    failures = [check for check in checks if check.status == FAIL]
    if failures:
        first = failures[0]
        where = f"stage {first.stage}: " if first.stage else ""
        more = (
            f" ({len(failures) - 1} more: python -m backfill doctor lists them)" if len(failures) > 1 else ""
        )
        raise BadInput(f"{what}: {where}{first.detail}{more}")


def format_check(check: Check) -> str:
    return f"{check.status:<4}  {check.name}: {check.detail}"
