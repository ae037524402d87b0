"""The retry policy: tenacity, configured explicitly, retrying only what :mod:`backfill.faults` calls transient.

Default as the team's hand-written fix: 3 retries (4 attempts) after 30, 60 and 120 seconds, with
up to 10% random jitter so that parallel failures do not retry in lockstep. ``sleep`` and the
random source are injectable, so tests never really sleep.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import tenacity

from backfill.faults import is_transient

DEFAULT_DELAYS = (30.0, 60.0, 120.0)
"""Seconds before the 1st, 2nd and 3rd retry; later retries wait as long as the last one."""

DEFAULT_JITTER = 0.1
"""Up to this fraction of a delay is added at random."""


class wait_delays(tenacity.wait.wait_base):
    """Wait the n-th configured delay before the n-th retry, plus a random fraction of it."""

    def __init__(self, delays: tuple[float, ...], jitter: float, rng: random.Random):
        self.delays = delays or (0.0,)
        self.jitter = jitter
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        base = self.delays[min(retry_state.attempt_number, len(self.delays)) - 1]
        return base * (1.0 + self.jitter * self.rng.random())


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures."""

    max_attempts: int = 4
    delays: tuple[float, ...] = DEFAULT_DELAYS
    jitter: float = DEFAULT_JITTER
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False)
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def retrying(
        self, on_retry: Callable[[int, BaseException, float], None] | None = None
    ) -> tenacity.Retrying:
        """A tenacity controller; ``on_retry(attempt, error, delay)`` is told before each wait."""

        def before_sleep(state: tenacity.RetryCallState) -> None:
            # tenacity calls before_sleep only after a failed attempt: there is an outcome and an error.
            if on_retry is not None and state.outcome is not None:
                error = state.outcome.exception()
                assert error is not None
                on_retry(state.attempt_number, error, state.upcoming_sleep or 0.0)

        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=wait_delays(self.delays, self.jitter, self.rng),
            retry=tenacity.retry_if_exception(is_transient),
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )

    def call(self, fn: Callable[[], Any], on_retry=None) -> tuple[Any, int]:
        """Run ``fn`` under the policy; returns (its result, attempts made). Re-raises the last error."""
        controller = self.retrying(on_retry)
        result = controller(fn)
        return result, controller.statistics.get("attempt_number", 1)
