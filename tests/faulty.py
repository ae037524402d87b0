"""A real DuckDB warehouse with faults injected at the adapter boundary, for the fault-bar tests."""

from __future__ import annotations

import datetime as dt

from backfill.warehouse.duckdb import DuckDBWarehouse


class PoisonedDate(ValueError):
    """A permanent error tied to one date (as bad data or a processor bug would be)."""


class FaultyWarehouse(DuckDBWarehouse):
    """Fails every ``every``-th call with a transient error, alternating before and after the call
    took effect (a timeout while waiting for a job that did commit); writes that include a
    poisoned date fail permanently."""

    def __init__(
        self, settings, path, *, every: int | None = None, poison: set[dt.date] = frozenset(), always=None
    ):
        super().__init__(settings, path)
        self.every = every
        self.poison = set(poison)
        self.always = always
        self.calls = 0
        self.injected = 0
        self.on_execute = None

    def _inject(self) -> str | None:
        self.calls += 1
        if self.always is not None:
            raise self.always
        if self.every and self.calls % self.every == 0:
            self.injected += 1
            return "before" if self.injected % 2 else "after"
        return None

    def _query(self, statements, params, **options):
        when = self._inject()
        if when == "before":
            raise TimeoutError("injected: query timed out")
        frame = super()._query(statements, params, **options)
        if when == "after":
            raise ConnectionResetError("injected: connection reset while reading results")
        return frame

    def _execute(self, statements, params, **options):
        if self.on_execute is not None:
            self.on_execute(params)
        if self.poison & set(params.get("dates", [])):
            raise PoisonedDate(f"injected: cannot process {sorted(self.poison)[0]}")
        when = self._inject()
        if when == "before":
            raise TimeoutError("injected: job timed out")
        super()._execute(statements, params, **options)
        if when == "after":
            raise ConnectionResetError("injected: connection reset after the job committed")
