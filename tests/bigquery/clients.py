"""Wrappers around the real ``google.cloud.bigquery.Client`` for the emulator tests.

Faults are injected at the client boundary, the outermost point the adapter calls: a wrapped
client's ``query`` raises before the job is sent (the request never got through) or after it ran
(the response was lost), and everything else is the real client talking to the emulator.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from google.cloud import bigquery


def first_word(sql: str) -> str:
    return sql.split(None, 1)[0].upper()


@dataclass
class Fault:
    """Raise ``error`` once, at the first job whose SQL ``matches``, ``before`` or after sending it."""

    matches: Callable[[str], bool]
    error: BaseException
    before: bool = True
    fired: bool = False


@dataclass
class PollFault:
    """Raise ``error`` from the first ``result()`` (the wait) of the first job whose SQL ``matches``;
    the job itself runs to the end on the server."""

    matches: Callable[[str], bool]
    error: BaseException
    fired: bool = False


class _FlakyWait:
    """A real job whose first wait fails; everything else is the job's own."""

    def __init__(self, job, fault: PollFault):
        self._job = job
        self._fault = fault

    def result(self, *args, **kwargs):
        if not self._fault.fired:
            self._fault.fired = True
            raise self._fault.error
        return self._job.result(*args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._job, name)


@dataclass
class FaultyClient:
    """The real client, except that some ``query`` calls fail; records every statement it is given."""

    client: bigquery.Client
    faults: list[Fault] = field(default_factory=list)
    rewrite: Callable[[str], str] | None = None
    """Applied to each statement before it is sent (to make the server itself reject one)."""
    sent: list[str] = field(default_factory=list)
    poll_faults: list[PollFault] = field(default_factory=list)
    reattached: list[str] = field(default_factory=list)
    """Job ids that the adapter asked for again (``get_job``)."""

    def get_job(self, job_id, *args, **kwargs):
        self.reattached.append(getattr(job_id, "job_id", job_id))
        return self.client.get_job(job_id, *args, **kwargs)

    def query(self, sql: str, *args, **kwargs):
        if self.rewrite is not None:
            sql = self.rewrite(sql)
        self.sent.append(sql)
        fault = next((f for f in self.faults if not f.fired and f.matches(sql)), None)
        if fault is not None and fault.before:
            fault.fired = True
            raise fault.error
        job = self.client.query(sql, *args, **kwargs)
        if fault is not None:
            job.result(retry=None)  # the job did run; only its answer is lost
            fault.fired = True
            raise fault.error
        poll = next((f for f in self.poll_faults if not f.fired and f.matches(sql)), None)
        return _FlakyWait(job, poll) if poll is not None else job

    def __getattr__(self, name: str):
        return getattr(self.client, name)


@contextlib.contextmanager
def client_of(warehouse, wrapper) -> Iterator:
    """Let ``warehouse`` talk through ``wrapper`` for the block."""
    real = warehouse.client
    warehouse.client = wrapper
    try:
        yield wrapper
    finally:
        warehouse.client = real


@contextlib.contextmanager
def recorded_jobs(client: bigquery.Client) -> Iterator[list[dict]]:
    """The job resources the client POSTs to ``jobs.insert`` in the block: what reaches the wire."""
    connection = client._connection
    real = connection.api_request
    jobs: list[dict] = []

    def api_request(*args, **kwargs):
        if kwargs.get("method") == "POST" and str(kwargs.get("path", "")).endswith("/jobs"):
            jobs.append(kwargs.get("data") or {})
        return real(*args, **kwargs)

    connection.api_request = api_request
    try:
        yield jobs
    finally:
        del connection.api_request
