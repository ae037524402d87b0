"""A pipeline's meaning, apart from its file's bytes: what a run records to be resumed or rerun.

Two pipeline files mean the same when they declare the same stages with the same tables, columns,
gates, rules and processors. Comments, labels (display only), blank lines, the order of the stages
in the file and the order of a table's declared columns do not change what a run writes, so they do
not block a resume or a rerun. A change that does is named, one line per change, for example
``stage predictions: processor argv changed``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from backfill.pipeline import Pipeline, Stage

DISPLAY_ONLY = frozenset({"name", "label"})
"""Stage fields that do not change what a run writes (the name is the stage's key in the form)."""

UNORDERED = frozenset({"duplicate_key", "required_columns", "columns", "systems"})
"""Fields that are sets: the order the file lists them in means nothing."""


def _plain(name: str, value: Any) -> Any:
    if name == "columns":
        return dict(value)
    if name in UNORDERED:
        return sorted(value)
    return list(value) if isinstance(value, tuple) else value


def _stage_form(stage: Stage) -> dict[str, Any]:
    form: dict[str, Any] = {}
    for field in dataclasses.fields(stage):
        if field.name in DISPLAY_ONLY:
            continue
        value = getattr(stage, field.name)
        if field.name == "processor":
            value = (
                None
                if value is None
                else {f.name: _plain(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)}
            )
        form[field.name] = _plain(field.name, value)
    return form


def normal_form(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline as plain JSON data: its reference stage and each stage by name, display-only
    fields left out and unordered lists sorted, so equal meaning gives equal data."""
    form = {
        "reference": pipeline.reference_name,
        "stages": {stage.name: _stage_form(stage) for stage in pipeline.stages},
    }
    return json.loads(json.dumps(form, sort_keys=True))  # as the ledger gives it back


def _field_text(field: str) -> str:
    return field.replace("processor.", "processor ")


def _changed_fields(before: dict[str, Any], after: dict[str, Any], prefix: str = "") -> list[str]:
    changed = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict) and key == "processor":
            changed += _changed_fields(old, new, f"{prefix}{key}.")
        else:
            changed.append(_field_text(f"{prefix}{key}"))
    return changed


def differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """What changed in meaning from a recorded normal form to the current one: one line per change,
    empty when they mean the same."""
    lines = []
    if recorded.get("reference") != current.get("reference"):
        lines.append(
            f"reference stage changed from {recorded.get('reference')} to {current.get('reference')}"
        )
    before, after = recorded.get("stages", {}), current.get("stages", {})
    for name in sorted(set(before) - set(after)):
        lines.append(f"stage {name} removed")
    for name in sorted(set(after) - set(before)):
        lines.append(f"stage {name} added")
    for name in sorted(set(before) & set(after)):
        lines += [f"stage {name}: {field} changed" for field in _changed_fields(before[name], after[name])]
    return lines


__all__ = ["differences", "normal_form"]
