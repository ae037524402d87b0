"""Faults and a fake BigQuery at the HTTP boundary: under the official client, above the network.

``google.cloud.bigquery.Client`` sends every REST call through ``client._http.request(method, url,
headers=..., data=..., timeout=...)``, a ``requests.Session``. Two stand-ins for it:

- :class:`HttpFaults` wraps a real session (the emulator's): a rule may lose the answer to a request
  after the server took it (``requests.exceptions.ConnectionError``, as a dropped connection), answer
  a request itself as BigQuery would (a 409 for a job id that exists: the emulator accepts a
  duplicate id silently), or stand in for a job BigQuery stopped or refused;
- :class:`FakeBigQuery` answers the jobs API itself, for what the emulator cannot do at all (scripts
  that bind parameters, BigQuery's exact failure modes).

The client above them is the real one: its retries, its 409 recovery and its polling all run.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

JOBS = re.compile(r"/projects/(?P<project>[^/]+)/jobs$")
JOB = re.compile(r"/projects/(?P<project>[^/]+)/jobs/(?P<job>[^/?]+)$")
RESULTS = re.compile(r"/projects/(?P<project>[^/]+)/queries/(?P<job>[^/?]+)$")


def response(status: int, body: Any, method: str = "GET", url: str = "http://fake/") -> requests.Response:
    """A real ``requests.Response`` carrying a JSON body, as the client reads answers."""
    answer = requests.Response()
    answer.status_code = status
    answer._content = json.dumps(body).encode()
    answer.headers["content-type"] = "application/json; charset=UTF-8"
    answer.request = requests.Request(method, url).prepare()
    answer.url = url
    return answer


def error_body(status: int, reason: str, message: str) -> dict:
    """BigQuery's error answer (``{"error": {"code", "message", "errors": [{"reason", ...}]}}``)."""
    return {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}


def path_of(url: str) -> str:
    return urllib.parse.urlparse(url).path


def sql_of(body: Any) -> str:
    """The SQL of a ``jobs.insert`` body ("" for other requests)."""
    try:
        return json.loads(body)["configuration"]["query"]["query"]
    except (TypeError, ValueError, KeyError):
        return ""


def job_id_of(body: Any) -> str:
    try:
        return json.loads(body)["jobReference"]["jobId"]
    except (TypeError, ValueError, KeyError):
        return ""


@dataclass
class InsertFault:
    """For the first ``jobs.insert`` whose SQL ``matches``: ``lose_answer`` sends it on and drops the
    answer (the job exists and runs; the client sees a dropped connection, retries the same id, and
    BigQuery answers 409); ``stand_in`` answers in the server's place with this job status (an
    ``errorResult``: the job was stopped or refused), and nothing reaches the server."""

    matches: Callable[[str], bool]
    lose_answer: bool = False
    stand_in: dict | None = None
    fired: bool = False


@dataclass
class HttpFaults:
    """A real session with :class:`InsertFault` rules; records every request it is given."""

    session: Any
    faults: list[InsertFault] = field(default_factory=list)
    requests: list[tuple[str, str, str]] = field(default_factory=list)
    """(method, path, job id of a jobs.insert or "") of every request, answered or not."""
    job_ids: set[str] = field(default_factory=set)
    """Job ids the server accepted through this session."""
    stood_in: dict[str, dict] = field(default_factory=dict)
    billed_per_job: int | None = None
    """When set, every finished query job the server shows bills this many bytes (the emulator
    reports no totalBytesBilled; BigQuery bills at least 10 MB a job)."""
    billed: set[str] = field(default_factory=set)
    """Job ids shown as finished with :attr:`billed_per_job`."""

    def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        path = path_of(url)
        inserted = job_id_of(data) if method == "POST" and JOBS.search(path) else ""
        self.requests.append((method, path, inserted))
        if inserted and inserted in self.job_ids | set(self.stood_in):
            # What BigQuery answers to an insert of a job id that exists (the emulator does not).
            return response(409, error_body(409, "duplicate", f"Already Exists: Job {inserted}"), method, url)
        shown = JOB.search(path) or RESULTS.search(path)
        if shown and shown["job"] in self.stood_in:
            return self._stood_in(method, url, shown["job"], bool(RESULTS.search(path)))
        fault = next((f for f in self.faults if inserted and not f.fired and f.matches(sql_of(data))), None)
        if fault is not None and fault.stand_in is not None:
            fault.fired = True
            body = json.loads(data)
            body["status"] = {"state": "DONE", **fault.stand_in}
            self.stood_in[inserted] = body
            return response(200, body, method, url)
        answer = self.session.request(method=method, url=url, data=data, **kwargs)
        if inserted and 200 <= answer.status_code < 300:
            self.job_ids.add(inserted)
        if self.billed_per_job is not None and (inserted or JOB.search(path)) and answer.status_code == 200:
            answer = self._with_bill(answer)
        if fault is not None and fault.lose_answer:
            fault.fired = True
            raise requests.exceptions.ConnectionError("injected: connection reset before the answer arrived")
        return answer

    def _with_bill(self, answer: requests.Response) -> requests.Response:
        body = answer.json()
        if body.get("status", {}).get("state") != "DONE" or "query" not in body.get("configuration", {}):
            return answer
        if body["configuration"].get("dryRun"):
            return answer
        body.setdefault("statistics", {}).setdefault("query", {})["totalBytesBilled"] = str(
            self.billed_per_job
        )
        self.billed.add(body["jobReference"]["jobId"])
        return response(answer.status_code, body, answer.request.method or "GET", answer.url)

    def _stood_in(self, method: str, url: str, job_id: str, results: bool) -> requests.Response:
        body = self.stood_in[job_id]
        error = body["status"]["errorResult"]
        if results:  # getQueryResults reports the job's failure as an HTTP error
            return response(400, error_body(400, error["reason"], error["message"]), method, url)
        return response(200, body, method, url)

    def inserted_sql(self) -> list[str]:
        return [job for method, path, job in self.requests if job]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


@dataclass
class FakeJob:
    """How one job behaves on :class:`FakeBigQuery`."""

    error: dict | None = None
    """The job's ``errorResult`` once it is done (None: it succeeds)."""
    running_polls: int = 0
    """How many ``jobs.get`` answers say RUNNING before DONE."""
    results_error: tuple[int, dict] | None = None
    """While failed, ``getQueryResults`` answers this (status, error) instead of jobComplete."""


@dataclass
class FakeBigQuery:
    """BigQuery's jobs API (insert, get, getQueryResults) answered in memory; no network.

    ``plan(sql, number)`` says how the ``number``-th insert (from 0) of that SQL behaves; an insert
    whose answer is ``lose`` is stored, then the connection drops."""

    project: str = "demo-project"
    plan: Callable[[str, int], FakeJob] = lambda sql, number: FakeJob()
    lose: Callable[[str, int], bool] = lambda sql, number: False
    jobs: dict[str, dict] = field(default_factory=dict)
    behaviour: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    inserts: list[str] = field(default_factory=list)
    """The job id of every jobs.insert request, retries included."""
    polls: dict[str, int] = field(default_factory=dict)
    is_mtls: bool = False
    """What the client asks of its session to pick an endpoint."""

    def request(self, method: str, url: str, data: Any = None, **kwargs: Any) -> requests.Response:
        path = path_of(url)
        self.requests.append((method, path))
        if method == "POST" and JOBS.search(path):
            return self._insert(json.loads(data), url)
        if found := JOB.search(path):
            return self._get(found["job"], url)
        if found := RESULTS.search(path):
            return self._results(found["job"], url)
        return response(404, error_body(404, "notFound", f"Not found: {path}"), method, url)

    def _insert(self, body: dict, url: str) -> requests.Response:
        job_id = body["jobReference"]["jobId"]
        self.inserts.append(job_id)
        if job_id in self.jobs:
            return response(409, error_body(409, "duplicate", f"Already Exists: Job {job_id}"), "POST", url)
        sql = body["configuration"]["query"]["query"]
        number = sum(1 for job in self.jobs.values() if job["configuration"]["query"]["query"] == sql)
        body["jobReference"].setdefault("projectId", self.project)
        body["jobReference"].setdefault("location", "US")
        body["status"] = {"state": "RUNNING"}
        body["statistics"] = {"creationTime": "0"}
        self.jobs[job_id] = body
        self.behaviour[job_id] = self.plan(sql, number)
        self.polls[job_id] = 0
        if self.lose(sql, number):
            raise requests.exceptions.ConnectionError("injected: connection reset before the answer arrived")
        return response(200, body, "POST", url)

    def _get(self, job_id: str, url: str) -> requests.Response:
        if job_id not in self.jobs:
            return response(404, error_body(404, "notFound", f"Not found: Job {job_id}"), "GET", url)
        job, how = self.jobs[job_id], self.behaviour[job_id]
        self.polls[job_id] += 1
        if self.polls[job_id] > how.running_polls:
            job["status"] = {
                "state": "DONE",
                **({"errorResult": how.error, "errors": [how.error]} if how.error else {}),
            }
            job["statistics"] = {"creationTime": "0", "query": {"totalBytesBilled": "10485760"}}
        return response(200, job, "GET", url)

    def _results(self, job_id: str, url: str) -> requests.Response:
        job, how = self.jobs[job_id], self.behaviour[job_id]
        if how.error and how.results_error is not None:
            # The job failed meanwhile (what a later jobs.get shows).
            self.polls[job_id] = max(self.polls[job_id], how.running_polls)
            status, error = how.results_error
            return response(status, error_body(status, error["reason"], error["message"]), "GET", url)
        if how.error:
            return response(400, error_body(400, how.error["reason"], how.error["message"]), "GET", url)
        return response(
            200,
            {
                "kind": "bigquery#getQueryResultsResponse",
                "jobReference": job["jobReference"],
                "jobComplete": True,
                "totalRows": "0",
                "schema": {"fields": []},
                "rows": [],
            },
            "GET",
            url,
        )

    def jobs_with(self, fragment: str) -> list[str]:
        return [
            job_id for job_id, job in self.jobs.items() if fragment in job["configuration"]["query"]["query"]
        ]


def fake_client(server: Any, project: str = "demo-project"):
    """The official client, its requests going to ``server`` (a :class:`FakeBigQuery`)."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    return bigquery.Client(project=project, credentials=AnonymousCredentials(), _http=server, location="US")


class FakeClock:
    """``time`` for the client's retry loops: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
