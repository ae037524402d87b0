"""``python -m backfill smoke``: prove the production forms work in the user's own project.

Before a first production run, ``smoke`` builds a small demo (one season) in scratch datasets of the
configured warehouse, named like the configured datasets plus a suffix (``nba_analytics_scratch``,
...), and there runs what a real run runs, as a real run sends it:

1. a one-date backfill of every stage: each stage's replace script (BEGIN; DELETE; INSERT; COMMIT)
   as one job where the endpoint binds parameters inside scripts (BigQuery), else one job per
   statement in a session (the emulator);
2. checks: the date's coverage is ``ok`` for every stage, and each table's row count for the date is
   what a plain count of the reference table says it must be (one MLFS row per player who played;
   one prediction per system per player with enough history);
3. the stale-row deletion script over the month, then no stale row left;
4. drops the scratch datasets.

It touches only datasets it created: it labels them ``backfill_smoke=true`` when it makes them, and
refuses (exit 2, nothing written) when a dataset of a scratch name exists without that label; a
labelled one left by an interrupted smoke is its own and is replaced. One line per step, OK or FAIL
with what to fix; exit 0 when every step is OK, 1 otherwise.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from backfill import coverage, demo, faults, stale
from backfill.config import Settings
from backfill.errors import BadInput
from backfill.pipeline import Pipeline, Stage, builtin_pipeline
from backfill.processors import JobContext, processor_for
from backfill.seasons import season_start
from backfill.validate import check_identifier
from backfill.warehouse import Warehouse

SMOKE_LABELS = {"backfill_smoke": "true"}
"""Labels on every dataset smoke creates: the only datasets it will ever drop."""

SMOKE_DATE = demo.MISSING_PREDICTION_DATES[0]
"""The date backfilled: its predictions are missing in the demo (the incident's timed-out date)."""

STALE_RANGE = (dt.date(2021, 12, 1), dt.date(2021, 12, 31))
"""Where the demo's stale rows of every category are."""


@dataclass(frozen=True)
class Step:
    """One step's outcome: its name, whether it is fine, one line (what to fix when not)."""

    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'OK' if self.ok else 'FAIL':<4}  {self.name}: {self.detail}"


def check_suffix(suffix: str) -> str:
    """A scratch suffix: non-empty letters, digits and underscores (BadInput otherwise)."""
    if not suffix or not suffix.replace("_", "a").isalnum() or not suffix.isascii():
        raise BadInput(f"--scratch-suffix {suffix!r} must be letters, digits and underscores, e.g. _scratch")
    return suffix


def scratch_settings(settings: Settings, suffix: str) -> Settings:
    """The settings with every dataset renamed ``<dataset><suffix>``, and the built-in pipeline (the
    demo's data fits it, whatever pipeline the console runs)."""
    check_suffix(suffix)
    names = {}
    for field in ("analytics_dataset", "precompute_dataset", "predictions_dataset"):
        names[field] = check_identifier(getattr(settings, field) + suffix, "scratch dataset")
    return settings.replace(**names, pipeline=builtin_pipeline())


def scratch_datasets(settings: Settings) -> list[str]:
    return sorted(set(settings.datasets.values()))


def claim_datasets(warehouse: Warehouse, datasets: list[str]) -> list[str]:
    """Refuse (BadInput) if a scratch dataset exists without smoke's labels; returns those that
    exist with them (left by an interrupted smoke: its own, to be replaced)."""
    leftover: list[str] = []
    foreign: list[str] = []
    for dataset in datasets:
        labels = warehouse.scratch_dataset_labels(dataset)
        if labels is None:
            continue
        (leftover if SMOKE_LABELS.items() <= labels.items() else foreign).append(dataset)
    if foreign:
        many = len(foreign) > 1
        raise BadInput(
            f"dataset{'s' if many else ''} {', '.join(foreign)} already exist{'' if many else 's'} and "
            f"{'were' if many else 'was'} not made by smoke (no backfill_smoke=true label); smoke never "
            f"touches {'them' if many else 'it'}: choose another --scratch-suffix"
        )
    return leftover


def _fix(exc: BaseException) -> str:
    """One line: what the warehouse said, and what to change when an engine knows."""
    hint = faults.explain(exc)
    if hint:
        return hint
    text = " ".join(str(getattr(exc, "message", None) or exc).split())[:300]
    kind = faults.classify(exc)
    advice = (
        "transient: run smoke again" if kind == faults.TRANSIENT else "see the error and README, IAM roles"
    )
    return f"{type(exc).__name__}: {text} ({advice})"


def run_smoke(
    warehouse: Warehouse,
    settings: Settings,
    *,
    keep: bool = False,
    seed: int = 7,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[Step]:
    """Every step in order, as it finishes. ``warehouse`` is an adapter on the scratch ``settings``
    (:func:`scratch_settings`); the caller has checked the datasets with :func:`claim_datasets`."""
    datasets = scratch_datasets(settings)
    created: list[str] = []
    try:
        for dataset in claim_datasets(warehouse, datasets):
            warehouse.drop_scratch_dataset(dataset, SMOKE_LABELS)
        try:
            for dataset in datasets:
                warehouse.create_scratch_dataset(dataset, SMOKE_LABELS)
                created.append(dataset)
        except Exception as exc:  # noqa: BLE001 - reported as the step's failure
            yield Step(
                "create scratch datasets",
                False,
                f"{_fix(exc)}; creating datasets needs roles/bigquery.dataOwner or bigquery.datasets.create",
            )
            return
        yield Step("create scratch datasets", True, f"{', '.join(datasets)} (labelled backfill_smoke=true)")
        for step in _steps(warehouse, settings, seed, clock):
            yield step
            if not step.ok:
                return
    finally:
        if created and not keep:
            yield _drop(warehouse, created)
        elif created:
            yield Step("drop scratch datasets", True, f"kept as asked: {', '.join(created)}")


def _drop(warehouse: Warehouse, datasets: list[str]) -> Step:
    try:
        for dataset in datasets:
            warehouse.drop_scratch_dataset(dataset, SMOKE_LABELS)
    except Exception as exc:  # noqa: BLE001 - reported as the step's failure
        return Step("drop scratch datasets", False, f"{_fix(exc)}; drop them by hand: {', '.join(datasets)}")
    left = [dataset for dataset in datasets if warehouse.scratch_dataset_labels(dataset) is not None]
    if left:
        return Step("drop scratch datasets", False, f"{', '.join(left)} still exist: drop them by hand")
    return Step("drop scratch datasets", True, f"dropped {', '.join(datasets)}")


def _steps(warehouse: Warehouse, settings: Settings, seed: int, clock: Callable[[], float]) -> Iterator[Step]:
    pipeline = settings.pipeline
    day = SMOKE_DATE

    def attempt(name: str, work: Callable[[], Step]) -> Step:
        try:
            return work()
        except Exception as exc:  # noqa: BLE001 - reported as the step's failure
            return Step(name, False, _fix(exc))

    def build() -> Step:
        started = clock()
        summary = demo.build_demo(warehouse, settings, seasons=1, seed=seed)
        return Step(
            "build demo",
            True,
            f"{summary.player_game_rows:,} player-games, {summary.first_date} to {summary.last_date} "
            f"({clock() - started:.1f} s)",
        )

    yield (step := attempt("build demo", build))
    if not step.ok:
        return

    def backfill() -> Step:
        before = coverage.daily_coverage(warehouse, settings, day, day).set_index("stage")
        now = dt.datetime.now(dt.UTC)
        run_id = f"smoke-{uuid.uuid4().hex[:8]}"
        jobs = []
        for stage in pipeline.backfillable:
            processor = processor_for(stage, pipeline)
            processor.preflight(warehouse)
            sent = warehouse.statements_issued
            processor.run([day], JobContext(warehouse, settings, run_id, stage.name, now))
            jobs.append(
                f"{stage.name} {warehouse.statements_issued - sent} job{'s' if warehouse.statements_issued - sent != 1 else ''}"
            )
        was = ", ".join(
            f"{name} {before.loc[name, 'player_game_coverage_pct']}%" for name in pipeline.stage_names
        )
        return Step(f"backfill {day}", True, f"replace scripts sent ({'; '.join(jobs)}); before: {was}")

    yield (step := attempt(f"backfill {day}", backfill))
    if not step.ok:
        return

    def measured() -> Step:
        after = coverage.daily_coverage(warehouse, settings, day, day).set_index("stage")
        shown = ", ".join(
            f"{name} {after.loc[name, 'status']} {after.loc[name, 'expected_coverage_pct']}%"
            for name in pipeline.stage_names
        )
        bad = [name for name in pipeline.stage_names if after.loc[name, "status"] not in ("ok", "bootstrap")]
        if bad:
            return Step(
                f"coverage {day}",
                False,
                f"{shown}: the replace did not cover every player; check the stage tables' columns "
                "(python -m backfill doctor) and the job history in INFORMATION_SCHEMA.JOBS (label app=nba-backfill)",
            )
        return Step(f"coverage {day}", True, shown)

    yield (step := attempt(f"coverage {day}", measured))
    if not step.ok:
        return
    yield (step := attempt("row counts", lambda: _row_counts(warehouse, settings, day)))
    if not step.ok:
        return
    yield attempt("stale rows", lambda: _stale(warehouse, settings))


def _count(warehouse: Warehouse, sql: str, params: dict) -> int:
    return int(warehouse.query(sql, params).iloc[0]["n"])


def played_sql(pipeline: Pipeline) -> str:
    """Players of the reference on ``@d`` (a plain count, independent of the coverage SQL)."""
    ref = pipeline.reference
    return f"SELECT COUNT(DISTINCT {ref.player_column}) AS n FROM {{{ref.name}}} WHERE {ref.date_column} = @d"


def rows_sql(stage: Stage) -> str:
    """A stage table's rows on ``@d``."""
    return f"SELECT COUNT(*) AS n FROM {{{stage.name}}} WHERE {stage.date_column} = @d"


def eligible_sql(pipeline: Pipeline) -> str:
    """Players of ``@d`` with at least ``@min_history`` earlier games since ``@season_start``."""
    ref = pipeline.reference
    d, p = ref.date_column, ref.player_column
    return (
        f"SELECT COUNT(*) AS n FROM (SELECT p.{p} FROM {{{ref.name}}} AS p "
        f"JOIN {{{ref.name}}} AS q ON q.{p} = p.{p} AND q.{d} >= @season_start AND q.{d} < p.{d} "
        f"WHERE p.{d} = @d GROUP BY p.{p} HAVING COUNT(*) >= @min_history)"
    )


def _row_counts(warehouse: Warehouse, settings: Settings, day: dt.date) -> Step:
    """Each stage's rows of the date against what plain counts of the reference say they must be."""
    pipeline = settings.pipeline
    params = {"d": day, "season_start": season_start(day)}
    played = _count(warehouse, played_sql(pipeline), params)
    found, wanted = [], []
    for stage in pipeline.backfillable:
        rows = _count(warehouse, rows_sql(stage), params)
        systems = stage.processor.systems if stage.processor else ()
        if systems:
            # A prediction per system for each player with enough earlier games this season.
            eligible = _count(
                warehouse, eligible_sql(pipeline), params | {"min_history": stage.bootstrap_min_history}
            )
            expected, why = (
                eligible * len(systems),
                f"{eligible} players with history x {len(systems)} systems",
            )
        else:
            expected, why = played, f"{played} players who played"
        found.append(
            f"{stage.name} {rows:,} = {why}"
            if rows == expected
            else f"{stage.name} {rows:,} != {expected:,} ({why})"
        )
        wanted.append(rows == expected)
    if all(wanted):
        return Step("row counts", True, "; ".join(found))
    return Step(
        "row counts",
        False,
        "; ".join(found) + ": duplicate or lost rows; rerun smoke, and report it if it repeats",
    )


def _stale(warehouse: Warehouse, settings: Settings) -> Step:
    first, last = STALE_RANGE
    sent = warehouse.statements_issued
    deleted = stale.delete_stale(warehouse, settings, first, last)
    jobs = warehouse.statements_issued - sent
    left = stale.stale_counts(warehouse, settings, first, last)
    if deleted.empty:
        return Step("stale rows", False, f"the demo had no stale rows from {first} to {last} to delete")
    if not left.empty:
        return Step(
            "stale rows",
            False,
            f"{int(left['rows'].sum())} stale rows left after the deletion script: rerun smoke, and report it if it repeats",
        )
    categories = ", ".join(sorted(set(deleted["category"])))
    return Step(
        "stale rows",
        True,
        f"deleted {int(deleted['rows'].sum())} flagged rows ({categories}) on {deleted['game_date'].nunique()} "
        f"dates by the deletion script ({jobs} jobs with the count before it); none left",
    )
