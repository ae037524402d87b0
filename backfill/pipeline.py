"""The pipeline: its stages as data, read from a pipeline file (SPEC 7).

A pipeline file names a reference stage (who should be covered) and the stages computed from it,
each with its table, its upstream stage, the rules that judge it (gate, bootstrap, stale-row
checks) and the processor that backfills it. The file is ``--pipeline PATH``, else
``BACKFILL_PIPELINE``, else ``pipeline.toml`` in the working directory, else the built-in demo
pipeline shipped in this package. Everything that knows a stage reads it from here, so adding a
stage is a change to the file, not to the code.

A bad file is refused at load with a one-line reason naming the field (:class:`BadInput`).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import string
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from backfill.errors import BadInput
from backfill.validate import check_identifier

BUILTIN_PATH = Path(__file__).parent / "pipelines" / "demo.toml"
"""The built-in demo pipeline (both stages computed by the console's own SQL)."""

PIPELINE_FILE = "pipeline.toml"
"""Read from the working directory when neither ``--pipeline`` nor ``BACKFILL_PIPELINE`` names one."""

PROCESSOR_KINDS = ("sql", "command", "python")

DEFAULT_WRITTEN_AT = "processed_at"
"""A stage's ``written_at_column`` where its file names none."""

PLACEHOLDERS = frozenset({"dates", "start", "end", "dates_file"})
"""What a command's ``argv`` may hold in braces: the batch's dates in the forms a job may want."""

_FUNCTION = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")

_PIPELINE_FIELDS = {"reference"}
"""The keys of ``[pipeline]``."""

MAX_SEASON_GAMES = 82 + 28
"""The most games one player can have in a season (82 regular-season games and at most 28 in the
playoffs): a ``bootstrap_min_history`` beyond it would keep every date in bootstrap for ever."""

_STAGE_FIELDS = {
    "label",
    "table",
    "date_column",
    "player_column",
    "upstream",
    "version_column",
    "current_version",
    "upstream_time_column",
    "written_at_column",
    "gate_min_upstream_pct",
    "bootstrap_min_history",
    "duplicate_key",
    "required_columns",
    "name_column",
    "team_column",
    "columns",
    "processor",
}


@dataclass(frozen=True)
class Processor:
    """How a stage is backfilled: the built-in SQL, the team's command, or a Python function."""

    kind: str
    builtin: str | None = None
    systems: tuple[str, ...] = ()
    argv: tuple[str, ...] = ()
    function: str | None = None
    timeout_s: float = 3600.0
    max_parallel: int = 1
    batch_size: int | None = None
    clean_stale: bool = False


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline: a table of rows per (date, player) and the rules that judge it."""

    name: str
    label: str
    dataset: str
    table: str
    date_column: str = "game_date"
    player_column: str = "player_lookup"
    upstream: str | None = None
    version_column: str | None = None
    current_version: str | None = None
    upstream_time_column: str | None = None
    written_at_column: str = DEFAULT_WRITTEN_AT
    gate_min_upstream_pct: float | None = None
    bootstrap_min_history: int = 0
    duplicate_key: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()
    name_column: str | None = None
    team_column: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    processor: Processor | None = None

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that identify one row (duplicates share them)."""
        return self.duplicate_key or (self.date_column, self.player_column)

    @property
    def table_name(self) -> str:
        """``dataset.table`` as written in the pipeline file."""
        return f"{self.dataset}.{self.table}"

    @property
    def gated(self) -> bool:
        return self.gate_min_upstream_pct is not None


@dataclass(frozen=True)
class Pipeline:
    """The stages of a pipeline, reference first, then the others in dependency order."""

    reference_name: str
    stages: tuple[Stage, ...]
    source: str = field(repr=False)
    path: str
    """Where the file was read (``builtin`` for the demo pipeline shipped in the package)."""

    @property
    def content_hash(self) -> str:
        """SHA-256 of the file's text: a run records it, and resume refuses a changed file."""
        return hashlib.sha256(self.source.encode()).hexdigest()

    @property
    def reference(self) -> Stage:
        return self.stages[0]

    @property
    def backfillable(self) -> tuple[Stage, ...]:
        """The stages the console backfills, in dependency order."""
        return self.stages[1:]

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.backfillable)

    @property
    def folder(self) -> Path:
        """Where command processors run (the pipeline file's folder)."""
        return BUILTIN_PATH.parent if self.path == "builtin" else Path(self.path).resolve().parent

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise BadInput(f"unknown stage {name!r} (choose from {', '.join(self.stage_names)})")

    def upstream(self, stage: Stage) -> Stage:
        return self.stage(stage.upstream or self.reference_name)

    def label(self, name: str) -> str:
        return self.stage(name).label

    @property
    def labels(self) -> dict[str, str]:
        """Display label of every backfillable stage, in dependency order."""
        return {stage.name: stage.label for stage in self.backfillable}

    def check_stages(self, stages: str | Iterable[str]) -> tuple[str, ...]:
        """Known backfillable stages, in dependency order without repeats; BadInput otherwise."""
        items = stages.split(",") if isinstance(stages, str) else list(stages)
        items = [item.strip() for item in items if item.strip()]
        if not items:
            raise BadInput(f"no stage given (choose from {', '.join(self.stage_names)})")
        for item in items:
            if item == self.reference_name:
                raise BadInput(f"stage {item!r} is the pipeline's reference data; it is never backfilled")
            self.stage(item)
        return tuple(name for name in self.stage_names if name in items)

    def downstream_of(self, names: Iterable[str]) -> tuple[str, ...]:
        """The stages given and every stage that depends on them, in dependency order."""
        chosen = set(names)
        for stage in self.backfillable:
            if stage.upstream in chosen:
                chosen.add(stage.name)
        return tuple(name for name in self.stage_names if name in chosen)

    def with_stage(self, name: str, **changes: Any) -> Pipeline:
        """A copy with one stage's fields changed (tests and what-if views)."""
        stages = tuple(replace(s, **changes) if s.name == name else s for s in self.stages)
        return replace(self, stages=stages)


def load_pipeline(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Pipeline:
    """The pipeline named by ``path``, ``BACKFILL_PIPELINE``, ``./pipeline.toml`` or the built-in one."""
    environ = os.environ if environ is None else environ
    chosen = path or environ.get("BACKFILL_PIPELINE") or None
    if chosen is None and Path(PIPELINE_FILE).is_file():
        chosen = PIPELINE_FILE
    if chosen is None or str(chosen) == "builtin":
        return builtin_pipeline()
    file = Path(chosen)
    if not file.is_file():
        raise BadInput(f"pipeline file {file} does not exist")
    try:
        text = file.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"pipeline file {file} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise BadInput(f"pipeline file {file} cannot be read: {exc.strerror or exc}") from None
    return parse_pipeline(text, str(file.resolve()))


_BUILTIN: Pipeline | None = None


def builtin_pipeline() -> Pipeline:
    """The demo pipeline shipped in the package (parsed once)."""
    global _BUILTIN
    if _BUILTIN is None:
        _BUILTIN = parse_pipeline(BUILTIN_PATH.read_text(), "builtin")
    return _BUILTIN


def parse_pipeline(text: str, path: str = "<text>") -> Pipeline:
    """Parse and check a pipeline file's text; BadInput names the field at fault."""
    try:
        return _parse(text, path)
    except (TypeError, AttributeError, ValueError, KeyError, RecursionError) as exc:
        # A shape no check below foresaw is still a bad file, said in one line, never a traceback.
        if isinstance(exc, BadInput):
            raise
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise BadInput(f"pipeline file {path} is malformed: {detail}") from None


def _parse(text: str, path: str) -> Pipeline:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"pipeline file {path} is not valid TOML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise BadInput(f"pipeline file {path} is nested too deeply") from None
    unknown = set(data) - {"pipeline", "stages"}
    if unknown:
        raise BadInput(f"pipeline file {path}: unknown section {sorted(unknown)[0]!r}")
    header = data.get("pipeline", {})
    if not isinstance(header, dict):
        raise BadInput(f"pipeline file {path}: pipeline must be a table ([pipeline])")
    unknown = set(header) - _PIPELINE_FIELDS
    if unknown:
        raise BadInput(f"pipeline file {path}: pipeline.{sorted(unknown)[0]} is not a known field")
    raw_stages = data.get("stages")
    if not isinstance(raw_stages, dict) or not raw_stages:
        raise BadInput(f"pipeline file {path}: no [stages.NAME] section")
    reference = header.get("reference")
    if reference is None:
        raise BadInput(f"pipeline file {path}: pipeline.reference is missing")
    if not isinstance(reference, str):
        raise BadInput(f"pipeline file {path}: pipeline.reference must be a stage name")
    if reference not in raw_stages:
        raise BadInput(f"pipeline file {path}: pipeline.reference names unknown stage {reference!r}")
    folder = None if path in ("<text>", "builtin") else Path(path).parent
    stages = {name: _stage(name, spec, path, name == reference, folder) for name, spec in raw_stages.items()}
    owners: dict[str, str] = {}
    for stage in stages.values():
        owner = owners.setdefault(stage.table_name, stage.name)
        if owner != stage.name:
            # A stage written into another's table (the reference's above all) would replace its rows.
            backfilled, kept = (owner, stage.name) if stage.name == reference else (stage.name, owner)
            whose = "the reference stage's" if kept == reference else f"stage {kept}'s"
            raise BadInput(
                f"pipeline file {path}: stages.{backfilled}.table {stage.table_name} is {whose} table"
            )
    ordered = _dependency_order(stages, reference, path)
    return Pipeline(reference_name=reference, stages=tuple(ordered), source=text, path=path)


def _stage(name: str, spec: Any, path: str, is_reference: bool, folder: Path | None = None) -> Stage:
    where = f"pipeline file {path}: stages.{name}"
    _identifier(name, f"{where}: stage name")
    if not isinstance(spec, dict):
        raise BadInput(f"{where} must be a table")
    unknown = set(spec) - _STAGE_FIELDS
    if unknown:
        raise BadInput(f"{where}.{sorted(unknown)[0]} is not a known field")
    table = spec.get("table")
    if not isinstance(table, str) or table.count(".") != 1:
        raise BadInput(f"{where}.table is missing or not DATASET.TABLE")
    dataset, table_name = table.split(".")
    _identifier(dataset, f"{where}.table dataset")
    _identifier(table_name, f"{where}.table")
    values: dict[str, Any] = {"name": name, "label": str(spec.get("label", name)), "dataset": dataset}
    values["table"] = table_name
    for column in (
        "date_column",
        "player_column",
        "version_column",
        "upstream_time_column",
        "written_at_column",
        "name_column",
        "team_column",
    ):
        if column in spec:
            values[column] = _identifier(spec[column], f"{where}.{column}")
    if "upstream" in spec:
        values["upstream"] = _identifier(spec["upstream"], f"{where}.upstream")
    if "label" in spec and not isinstance(spec["label"], str):
        raise BadInput(f"{where}.label must be a string")
    if "current_version" in spec:
        if not isinstance(spec["current_version"], str | int):
            raise BadInput(f"{where}.current_version must be a string")
        values["current_version"] = str(spec["current_version"])
        if "version_column" not in spec:
            raise BadInput(f"{where}.current_version needs a version_column")
    if "gate_min_upstream_pct" in spec:
        values["gate_min_upstream_pct"] = _pct(
            spec["gate_min_upstream_pct"], f"{where}.gate_min_upstream_pct"
        )
    if "bootstrap_min_history" in spec:
        values["bootstrap_min_history"] = _count(
            spec["bootstrap_min_history"], f"{where}.bootstrap_min_history"
        )
        if values["bootstrap_min_history"] > MAX_SEASON_GAMES:
            raise BadInput(
                f"{where}.bootstrap_min_history {values['bootstrap_min_history']} is beyond any season "
                f"(at most {MAX_SEASON_GAMES} games)"
            )
    for key in ("duplicate_key", "required_columns"):
        if key in spec:
            values[key] = _identifiers(spec[key], f"{where}.{key}")
    if "columns" in spec:
        if not isinstance(spec["columns"], dict):
            raise BadInput(f'{where}.columns must be a table of COLUMN = "TYPE"')
        values["columns"] = tuple(
            (_identifier(column, f"{where}.columns"), _column_type(kind, f"{where}.columns.{column}"))
            for column, kind in spec["columns"].items()
        )
    if is_reference:
        if "processor" in spec or "upstream" in spec:
            raise BadInput(f"{where}: the reference stage has no upstream and no processor")
    else:
        if "upstream" not in spec:
            raise BadInput(f"{where}.upstream is missing")
        values["processor"] = _processor(spec.get("processor"), f"{where}.processor", folder)
    return Stage(**values)


def _processor(spec: Any, where: str, folder: Path | None = None) -> Processor:
    if not isinstance(spec, dict):
        raise BadInput(f"{where} is missing (a table with kind = sql, command or python)")
    kind = spec.get("kind")
    if kind not in PROCESSOR_KINDS:
        raise BadInput(f"{where}.kind {kind!r} is not one of {', '.join(PROCESSOR_KINDS)}")
    known = {
        "sql": {"kind", "builtin", "systems", "batch_size"},
        "command": {"kind", "argv", "timeout_s", "max_parallel", "batch_size", "clean_stale"},
        "python": {"kind", "function", "timeout_s", "max_parallel", "batch_size", "clean_stale"},
    }[kind]
    unknown = set(spec) - known
    if unknown:
        raise BadInput(f"{where}.{sorted(unknown)[0]} is not a field of a {kind} processor")
    values: dict[str, Any] = {"kind": kind}
    if kind == "sql":
        from backfill.processors import BUILTINS

        builtin = spec.get("builtin")
        if builtin not in BUILTINS:
            raise BadInput(f"{where}.builtin {builtin!r} is not one of {', '.join(BUILTINS)}")
        values["builtin"] = builtin
        values["systems"] = BUILTINS[builtin].check_options(spec, where)
    elif kind == "command":
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            raise BadInput(f"{where}.argv must be a non-empty list of strings")
        for arg in argv:
            _check_placeholders(arg, f"{where}.argv")
        _check_program(argv[0], f"{where}.argv", folder)
        values["argv"] = tuple(argv)
    else:
        function = spec.get("function")
        if not isinstance(function, str) or not _FUNCTION.match(function):
            raise BadInput(f"{where}.function must be 'module:function', got {function!r}")
        values["function"] = function
    if "timeout_s" in spec:
        values["timeout_s"] = _positive(spec["timeout_s"], f"{where}.timeout_s")
    if "max_parallel" in spec:
        values["max_parallel"] = _count(spec["max_parallel"], f"{where}.max_parallel", minimum=1)
    if "batch_size" in spec:
        values["batch_size"] = _count(spec["batch_size"], f"{where}.batch_size", minimum=1)
    if "clean_stale" in spec:
        if not isinstance(spec["clean_stale"], bool):
            raise BadInput(f"{where}.clean_stale must be true or false")
        values["clean_stale"] = spec["clean_stale"]
    return Processor(**values)


def _check_placeholders(arg: str, what: str) -> None:
    """Only ``{dates}``, ``{start}``, ``{end}``, ``{dates_file}``; a lone brace is written ``{{``/``}}``."""
    try:
        fields = [(name, spec, conversion) for _, name, spec, conversion in string.Formatter().parse(arg)]
    except ValueError:
        raise BadInput(
            f"{what} has a lone brace in {arg!r} (write {{{{ or }}}} for a brace itself)"
        ) from None
    for name, spec, conversion in fields:
        if name is not None and (name not in PLACEHOLDERS or spec or conversion):
            raise BadInput(
                f"{what} has unknown placeholder {{{name}}} (known: "
                + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                + ")"
            )


def _check_program(program: str, what: str, folder: Path | None) -> None:
    """The program must exist: ``python``, a command on PATH, or a file beside the pipeline file."""
    if program in ("python", "python3") or folder is None or "{" in program:
        return
    if "/" in program:
        found = (folder / program).is_file() and os.access(folder / program, os.X_OK)
    else:
        found = shutil.which(program) is not None
    if not found:
        raise BadInput(f"{what}: program {program!r} is not found (nor executable)")


def _dependency_order(stages: dict[str, Stage], reference: str, path: str) -> list[Stage]:
    """Reference first, then each stage after its upstream (by depth, file order among equals).

    Depths are found once per stage (a walk up stops at a stage already known), so a long chain
    loads in time proportional to its stages, not their square."""
    for stage in stages.values():
        if stage.upstream is not None and stage.upstream not in stages:
            raise BadInput(
                f"pipeline file {path}: stages.{stage.name}.upstream names unknown stage {stage.upstream!r}"
            )
    depth: dict[str, int] = {reference: 0}
    for name in stages:
        chain: list[str] = []
        on_chain: set[str] = set()
        current: str | None = name
        while current not in depth:
            if current is None or current in on_chain:
                stuck = sorted(set(stages) - set(depth))
                raise BadInput(
                    f"pipeline file {path}: stages {', '.join(stuck)} form a cycle through upstream"
                )
            chain.append(current)
            on_chain.add(current)
            current = stages[current].upstream
        known = depth[current]
        for step, stage_name in enumerate(reversed(chain), start=1):
            depth[stage_name] = known + step
    position = {name: index for index, name in enumerate(stages)}
    return sorted(stages.values(), key=lambda stage: (depth[stage.name], position[stage.name]))


def _identifier(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise BadInput(f"{what} must be a string")
    return check_identifier(value, what)


def _identifiers(value: Any, what: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise BadInput(f"{what} must be a non-empty list of column names")
    return tuple(_identifier(item, what) for item in value)


_TYPES = {"DATE", "STRING", "INT64", "FLOAT64", "BOOL", "TIMESTAMP", "NUMERIC"}


def _column_type(value: Any, what: str) -> str:
    words = str(value).upper().split()
    if not words or words[0] not in _TYPES or words[1:] not in ([], ["NOT", "NULL"]):
        raise BadInput(f"{what} type {value!r} is not one of {', '.join(sorted(_TYPES))} [NOT NULL]")
    return " ".join(words)


def _pct(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise BadInput(f"{what} must be a number from 0 to 100, got {value!r}")
    return float(value)


def _count(value: Any, what: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise BadInput(f"{what} must be a whole number of {minimum} or more, got {value!r}")
    return value


def _positive(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0 or value != value:
        raise BadInput(f"{what} must be a positive number of seconds, got {value!r}")
    return float(value)


__all__ = ["Pipeline", "Processor", "Stage", "builtin_pipeline", "load_pipeline", "parse_pipeline"]
