"""What a backfill is asked to do: dates, stages, gate and retry settings, batch size.

A request is validated when it is made (bad input never reaches the ledger or the warehouse) and
is stored with its run as plain JSON, so a resume in another process does exactly the same work.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

from backfill.config import Settings
from backfill.errors import BadInput
from backfill.retry import RetryPolicy
from backfill.validate import STAGES, check_pct, check_range, check_stages, date_span, parse_date_list


@dataclass(frozen=True)
class BackfillRequest:
    """A validated backfill request."""

    dates: tuple[dt.date, ...]
    stages: tuple[str, ...] = STAGES
    min_mlfs_coverage_pct: float = 90.0
    skip_mlfs_check: bool = False
    max_attempts: int = 4
    retry_delays: tuple[float, ...] = (30.0, 60.0, 120.0)
    batch_size: int = 31

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        dates: Iterable[dt.date | str] | str | None = None,
        start: dt.date | str | None = None,
        end: dt.date | str | None = None,
        stages: Iterable[str] | str = STAGES,
        min_mlfs_coverage_pct: float | str | None = None,
        skip_mlfs_check: bool = False,
        max_attempts: int | str | None = None,
        retry_delays: Iterable[float] | str | None = None,
        batch_size: int | str | None = None,
        today: Callable[[], dt.date] = dt.date.today,
    ) -> BackfillRequest:
        """Validate user input into a request; raises BadInput with a one-line reason."""
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
        gate = settings.min_mlfs_coverage_pct if min_mlfs_coverage_pct is None else min_mlfs_coverage_pct
        attempts = (
            settings.max_attempts if max_attempts is None else _positive_int(max_attempts, "max attempts")
        )
        size = settings.batch_size if batch_size is None else _positive_int(batch_size, "batch size")
        return cls(
            dates=tuple(chosen),
            stages=check_stages(stages),
            min_mlfs_coverage_pct=check_pct(gate, "minimum MLFS coverage"),
            skip_mlfs_check=bool(skip_mlfs_check),
            max_attempts=attempts,
            retry_delays=_delays(settings.retry_delays if retry_delays is None else retry_delays),
            batch_size=size,
        )

    def items(self) -> list[tuple[str, dt.date]]:
        """Every (stage, date) work item, dates in order, stages in dependency order."""
        return [(stage, day) for day in self.dates for stage in self.stages]

    def to_params(self) -> dict:
        params = asdict(self)
        params["dates"] = [day.isoformat() for day in self.dates]
        return params

    @classmethod
    def from_params(cls, params: dict) -> BackfillRequest:
        values = dict(params)
        values["dates"] = tuple(dt.date.fromisoformat(day) for day in values["dates"])
        values["stages"] = tuple(values["stages"])
        values["retry_delays"] = tuple(float(delay) for delay in values["retry_delays"])
        return cls(**{key: values[key] for key in cls.__dataclass_fields__ if key in values})

    def retry_policy(self, **overrides) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, delays=self.retry_delays, **overrides)

    def with_dates(self, dates: Iterable[dt.date], stages: Iterable[str] | None = None) -> BackfillRequest:
        """The same settings for other dates (and stages): how reruns are made."""
        from dataclasses import replace

        return replace(
            self,
            dates=tuple(sorted(set(dates))),
            stages=check_stages(self.stages if stages is None else stages),
        )


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
    if any(delay < 0 or delay > 3600 for delay in delays):
        raise BadInput("retry delays must be between 0 and 3600 seconds")
    return delays
