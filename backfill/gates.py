"""The MLFS gate: predictions for a date run only on a feature store that covers enough of it.

The team learnt this the hard way: predictions run on an incomplete feature store silently leave
players out. Below the gate a date is ``blocked`` (not failed) with its measured MLFS coverage;
operators may skip the gate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class GateResult:
    """Whether predictions may run for a date, and the numbers behind the answer."""

    passed: bool
    mlfs_coverage_pct: float | None
    threshold_pct: float
    skipped: bool = False

    @property
    def reason(self) -> str:
        measured = "no players" if self.mlfs_coverage_pct is None else f"{self.mlfs_coverage_pct:.1f}%"
        if self.skipped:
            return f"MLFS gate skipped by operator (MLFS covers {measured})"
        verdict = "at or above" if self.passed else "below"
        return f"MLFS covers {measured}, {verdict} the {self.threshold_pct:g}% gate"


def mlfs_gate(mlfs_coverage_pct: float | None, threshold_pct: float, skip: bool = False) -> GateResult:
    """Judge one date: MLFS player-game coverage against the threshold."""
    measured = None if mlfs_coverage_pct is None or math.isnan(mlfs_coverage_pct) else mlfs_coverage_pct
    passed = skip or (measured is not None and measured >= threshold_pct)
    return GateResult(passed=passed, mlfs_coverage_pct=measured, threshold_pct=threshold_pct, skipped=skip)
