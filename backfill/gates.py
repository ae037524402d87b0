"""The gate: a stage runs for a date only on an upstream that covers enough of it (SPEC 4.4, 7.1).

The team learnt this the hard way: predictions run on an incomplete feature store silently leave
players out. A stage with ``gate_min_upstream_pct`` is ``blocked`` (not failed) on a date whose
upstream stage covers less than that, with the measured coverage; operators may skip the gate or
set another threshold for a run (``--skip-mlfs-check``, ``--min-mlfs-coverage``). The rule is
:func:`below_gate`, used by the runner, the dry run, date statuses and drill-down reasons alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd


def below_gate(measured_pct: Any, threshold_pct: Any) -> Any:
    """Whether upstream coverage is below a gate: scalars or whole columns (NaN threshold: no gate;
    NaN or missing coverage: no players, which is below any gate)."""
    if isinstance(measured_pct, pd.Series):
        return measured_pct.fillna(-1.0) < threshold_pct  # a NaN threshold compares False
    if threshold_pct is None or math.isnan(threshold_pct):
        return False
    return measured_pct is None or math.isnan(measured_pct) or measured_pct < threshold_pct


@dataclass(frozen=True)
class GateResult:
    """Whether a stage may run for a date, and the numbers behind the answer."""

    passed: bool
    upstream_label: str
    upstream_coverage_pct: float | None
    threshold_pct: float
    skipped: bool = False

    @property
    def reason(self) -> str:
        measured = (
            "no players" if self.upstream_coverage_pct is None else f"{self.upstream_coverage_pct:.1f}%"
        )
        if self.skipped:
            return f"{self.upstream_label} gate skipped by operator ({self.upstream_label} covers {measured})"
        verdict = "at or above" if self.passed else "below"
        return f"{self.upstream_label} covers {measured}, {verdict} the {self.threshold_pct:g}% gate"


def judge(
    upstream_label: str, upstream_pct: float | None, threshold_pct: float, skip: bool = False
) -> GateResult:
    """Judge one date: upstream player-game coverage against the threshold."""
    measured = None if upstream_pct is None or math.isnan(upstream_pct) else upstream_pct
    passed = skip or not below_gate(measured, threshold_pct)
    return GateResult(passed, upstream_label, measured, threshold_pct, skipped=skip)
