"""The pipeline as a graph: its stages from the reference down, each with its coverage of a period.

The pipeline file already defines the graph (each stage's ``upstream``); this draws it as Graphviz
DOT text, which ``st.graphviz_chart`` renders without the graphviz package.
"""

from __future__ import annotations

import pandas as pd

from backfill.coverage import GAP_STATUSES, STATUSES
from backfill.pipeline import Pipeline
from ui.format import STATUS_BACKGROUNDS, pct_text
from ui.tables import expected_coverage


def _quoted(*lines: str) -> str:
    """A DOT string of one or more lines (quotes and backslashes escaped; lines joined by DOT's \\n)."""
    escaped = [line.replace("\\", "\\\\").replace('"', '\\"') for line in lines]
    return '"' + "\\n".join(escaped) + '"'


def stage_line(daily: pd.DataFrame, stage: str, new: bool) -> tuple[str, str | None]:
    """(coverage text, worst status) of a stage over the period's dates."""
    if new:
        return "not yet backfilled", "missing"
    rows = daily[daily["stage"] == stage]
    gaps = rows[rows["status"].isin(GAP_STATUSES)]
    worst = min(rows["status"], key=STATUSES.index) if len(rows) else None
    dates = gaps["game_date"].nunique()
    gap_text = f", {dates} gap date{'s' if dates != 1 else ''}" if dates else ""
    return f"{pct_text(expected_coverage(daily, stage))} expected{gap_text}", worst


def lineage_dot(pipeline: Pipeline, daily: pd.DataFrame, labels: dict[str, str], new: list[str]) -> str:
    """DOT text of the pipeline: the reference (who played), then each stage after its upstream, with
    its expected coverage of ``daily``'s dates, coloured by its worst status."""
    reference = pipeline.reference
    lines = [
        "digraph pipeline {",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];',
        f"  {_quoted(reference.name)} [label={_quoted(reference.label, reference.table_name)}, fillcolor=white];",
    ]
    for stage in pipeline.backfillable:
        text, worst = stage_line(daily, stage.name, stage.name in new)
        colour = STATUS_BACKGROUNDS.get(worst or "", "white")
        label = _quoted(labels.get(stage.name, stage.label), stage.table_name, text)
        lines.append(f"  {_quoted(stage.name)} [label={label}, fillcolor={_quoted(colour)}];")
        lines.append(f"  {_quoted(pipeline.upstream(stage).name)} -> {_quoted(stage.name)};")
    lines.append("}")
    return "\n".join(lines)
