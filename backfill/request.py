"""What a backfill is asked to do: dates, stages, gate and retry settings, batch size.

A request is validated when it is made (bad input never reaches the ledger or the warehouse) and
is stored with its run as plain JSON, together with what else decides what the run writes (the
pipeline file's path and hash, the warehouse URL, the dataset names): a resume or a rerun in
another process does exactly the same work, and refuses if the pipeline file changed since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.retry import RetryPolicy
from backfill.validate import check_delays, check_pct, check_range, date_span, parse_date_list


@dataclass(frozen=True)
class BackfillRequest:
    """A validated backfill request."""

    dates: tuple[dt.date, ...]
    stages: tuple[str, ...] = ()
    min_upstream_coverage_pct: float | None = None
    """A gate threshold for this run, for every gated stage; None: each stage's own."""
    skip_gates: bool = False
    max_attempts: int = 4
    retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0)
    batch_size: int | None = None
    """Dates per window when asked (or set in the settings); None: sized by the work when the run is
    created (:mod:`backfill.batching`), and the size chosen is recorded with the run."""
    only: tuple[tuple[str, dt.date], ...] = ()
    """When given, the (stage, date) work items themselves, a part of dates x stages (a gap-dates
    plan: on each date only the stages with a gap there and those downstream of them)."""

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        dates: Iterable[dt.date | str] | str | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        stages: Iterable[str] | str | None = None,
        min_upstream_coverage_pct: float | str | None = None,
        skip_gates: bool = False,
        max_attempts: int | str | None = None,
        retry_delays: Iterable[float] | str | None = None,
        batch_size: int | str | None = None,
        only: Iterable[tuple[str, dt.date | str]] | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> BackfillRequest:
        """Validate user input into a request; raises BadInput with a one-line reason. ``only``
        keeps just those (stage, date) items of dates x stages (the others are left out)."""
        if dates is not None and (start is not None or end is not None):
            raise BadInput("give either dates or a start and end, not both")
        if dates is not None:
            chosen = parse_date_list(dates, max_days=settings.max_range_days, today=today)
        elif start is not None and end is not None:
            first, last = parse_date_list([start], today=today)[0], parse_date_list([end], today=today)[0]
            check_range(first, last, max_days=settings.max_range_days, today=today)
            chosen = date_span(first, last)
        else:
            raise BadInput("no dates given (use dates, or a start and an end date)")
        attempts = (
            settings.max_attempts if max_attempts is None else _positive_int(max_attempts, "max attempts")
        )
        size = settings.batch_size if batch_size in (None, "") else _positive_int(batch_size, "batch size")
        checked_stages = settings.pipeline.check_stages(
            settings.pipeline.stage_names if stages is None else stages
        )
        kept: tuple[tuple[str, dt.date], ...] = ()
        if only is not None:
            wanted = {(stage, parse_date_list([day], today=today)[0]) for stage, day in only}
            kept = tuple((stage, day) for day in chosen for stage in checked_stages if (stage, day) in wanted)
            if not kept:
                raise BadInput("no work item left: none of the chosen stages has work on these dates")
            chosen = sorted({day for _, day in kept})
            checked_stages = tuple(stage for stage in checked_stages if any(s == stage for s, _ in kept))
        return cls(
            dates=tuple(chosen),
            stages=checked_stages,
            min_upstream_coverage_pct=None
            if min_upstream_coverage_pct in (None, "")
            else check_pct(min_upstream_coverage_pct, _gate_name(settings)),
            skip_gates=bool(skip_gates),
            max_attempts=attempts,
            retry_delays=_delays(settings.retry_delays if retry_delays is None else retry_delays),
            batch_size=size,
            only=kept,
        )

    def items(self) -> list[tuple[str, dt.date]]:
        """Every (stage, date) work item, dates in order, stages in dependency order."""
        if self.only:
            return list(self.only)
        return [(stage, day) for day in self.dates for stage in self.stages]

    def to_params(self) -> dict:
        params = asdict(self)
        params["dates"] = [day.isoformat() for day in self.dates]
        if self.only:
            params["only"] = [[stage, day.isoformat()] for stage, day in self.only]
        else:
            del params["only"]  # a whole dates x stages request is recorded as before
        return params

    def gate_pct(self, stage_gate_pct: float | None) -> float | None:
        """The threshold this run applies to a stage whose own gate is ``stage_gate_pct`` (None: no gate)."""
        if stage_gate_pct is None:
            return None
        return stage_gate_pct if self.min_upstream_coverage_pct is None else self.min_upstream_coverage_pct

    @classmethod
    def from_params(cls, params: dict) -> BackfillRequest:
        values = dict(params)
        # Runs recorded before stages were data named the one gate after MLFS.
        if "min_mlfs_coverage_pct" in values:
            values.setdefault("min_upstream_coverage_pct", values.pop("min_mlfs_coverage_pct"))
        if "skip_mlfs_check" in values:
            values.setdefault("skip_gates", values.pop("skip_mlfs_check"))
        values["dates"] = tuple(dt.date.fromisoformat(day) for day in values["dates"])
        values["stages"] = tuple(values["stages"])
        values["retry_delays"] = tuple(float(delay) for delay in values["retry_delays"])
        values["only"] = tuple((stage, dt.date.fromisoformat(day)) for stage, day in values.get("only", ()))
        # The size a run chose is recorded as its batch_size; a new request from it sizes itself again.
        if "batch_size_asked" in values:
            values["batch_size"] = values["batch_size_asked"]
        return cls(**{key: values[key] for key in cls.__dataclass_fields__ if key in values})

    def retry_policy(self, **overrides) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, delays=self.retry_delays, **overrides)

    def with_dates(self, dates: Iterable[dt.date], stages: Iterable[str] | None = None) -> BackfillRequest:
        """The same settings for other dates (and stages): how reruns are made."""
        from dataclasses import replace

        return replace(
            self,
            dates=tuple(sorted(set(dates))),
            stages=tuple(self.stages if stages is None else stages),
            only=(),
        )


def _gate_name(settings: Settings) -> str:
    """``minimum MLFS coverage`` when every gate judges one upstream stage, as in the built-in pipeline."""
    pipeline = settings.pipeline
    upstreams = {pipeline.upstream(stage).label for stage in pipeline.backfillable if stage.gated}
    return f"minimum {upstreams.pop()} coverage" if len(upstreams) == 1 else "minimum upstream coverage"


def _positive_int(value: int | str, what: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadInput(f"{what} {value!r} is not a whole number") from None
    if number < 1:
        raise BadInput(f"{what} must be 1 or more, got {number}")
    return number


def _delays(value: Iterable[float] | str) -> tuple[float, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    try:
        delays = tuple(float(item) for item in items if str(item).strip())
    except ValueError:
        raise BadInput(f"retry delays {value!r} are not numbers (expected e.g. 30,60,120)") from None
    return check_delays(delays, "retry delays")
