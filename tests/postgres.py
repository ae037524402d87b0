"""A throwaway PostgreSQL server for the tests, started once per session, one database per test.

The server runs from Debian's binaries in a temporary directory on a free 127.0.0.1 port (as the
``postgres`` user when the tests run as root, since PostgreSQL refuses to run as root) and is
stopped at the end of the session. Without the binaries the tests that need it are skipped on a
developer's machine and fail when ``CI`` is set.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("BACKFILL_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
START_TIMEOUT_S = 60.0
SUPERUSER = "postgres"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _as_server_user(argv: list[str]) -> list[str]:
    """``argv`` as the postgres user when we are root; as ourselves otherwise."""
    return ["su", "postgres", "-c", shlex.join(argv)] if os.geteuid() == 0 else argv


def _wait_until_accepting(url: str, deadline: float) -> None:
    """Poll a connection until the server answers or the deadline passes."""
    import psycopg

    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a running server's superuser, ``postgresql://postgres@127.0.0.1:PORT``."""
    if not (PG_BIN / "initdb").is_file():
        reason = f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    # Not under pytest's base temp: its root directory is private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="backfill-pg-"))
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
    data, log = home / "data", home / "server.log"
    subprocess.run(
        _as_server_user(
            [str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", SUPERUSER, "--no-sync"]
        ),
        check=True,
        capture_output=True,
        timeout=120,
    )
    options = f"-p {{port}} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    for attempt in range(3):  # a port found free may be taken before the server binds it
        port = _free_port()
        started = subprocess.run(
            _as_server_user(
                [str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options.format(port=port), "-l", str(log)]
                + ["-w", "-t", str(int(START_TIMEOUT_S)), "start"]
            ),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S + 30,
        )
        if started.returncode == 0:
            break
        if attempt == 2:
            pytest.fail(f"PostgreSQL did not start: {started.stderr}\n{log.read_text()[-2000:]}")
    url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}"
    try:
        _wait_until_accepting(f"{url}/postgres", time.monotonic() + START_TIMEOUT_S)
        yield url
    finally:
        subprocess.run(
            _as_server_user([str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
            capture_output=True,
            timeout=120,
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def postgres_ledger(postgres_server) -> Iterator[str]:
    """A fresh, empty database on the session's server: a ``BACKFILL_LEDGER`` URL."""
    import psycopg
    from psycopg import sql

    from backfill.ledger import database

    name = f"ledger_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    location = f"{postgres_server}/{name}"
    yield location
    database.dispose(location)
    with psycopg.connect(f"{postgres_server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
