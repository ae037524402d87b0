"""The BigQuery adapter against a local BigQuery emulator, through the official client.

The emulator (``bqemulator``, which answers BigQuery's REST API from DuckDB) lives in its own virtual
environment, ``.venv-bqemu``, made by ``scripts/bqemulator-env.sh``: it needs a DuckDB version other
than the app's, and its pytest plugin must not load here. One emulator process serves the whole
session on a loopback port it picks itself; each test module gets datasets of its own.

Nothing in these tests may reach a Google endpoint: the adapter is given the emulator's address
through ``BIGQUERY_EMULATOR_HOST`` (anonymous credentials, no ADC lookup), and while a module runs,
host names other than loopback do not resolve at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backfill import demo
from backfill.config import Settings
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from backfill.warehouse.duckdb import DuckDBWarehouse

REPO = Path(__file__).resolve().parents[2]
EMULATOR_VENV = Path(os.environ.get("BQEMU_VENV") or REPO / ".venv-bqemu")
"""Where scripts/bqemulator-env.sh put the emulator (the same variable moves both)."""
EMULATOR = EMULATOR_VENV / "bin" / "bqemulator"
PROJECT = "demo-project"
DEMO_SEED = 7
START_TIMEOUT_S = 60.0

REQUIRED_ENV = "BQEMU_REQUIRED"
"""Set to 1 (CI) to make a missing emulator an error instead of a skip."""

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def emulator_command(project: str = PROJECT) -> list[str]:
    """The emulator's start command: in memory, REST and gRPC on free loopback ports, JSON logs."""
    return [
        str(EMULATOR),
        "start",
        "--ephemeral",
        "--project",
        project,
        "--rest-host",
        "127.0.0.1",
        "--rest-port",
        "0",
        "--grpc-host",
        "127.0.0.1",
        "--grpc-port",
        "0",
        "--log-format",
        "json",
        "--log-level",
        "info",
    ]


def _listening_port(log: Path) -> int | None:
    """The REST port the emulator reported binding (it logs ``rest.listen`` once started)."""
    for line in log.read_text(errors="replace").splitlines():
        if '"rest.listen"' in line:
            with contextlib.suppress(ValueError):
                return int(json.loads(line)["port"])
    return None


def _ready(host: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{host}/readyz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _log_tail(log: Path, lines: int = 30) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def require_emulator() -> None:
    """Skip a test that needs the emulator when it is not installed; fail instead where it must be
    (``BQEMU_REQUIRED=1``, as .ci/run sets)."""
    if EMULATOR.exists():
        return
    reason = (
        f"BigQuery emulator not installed ({EMULATOR} is missing): run scripts/bqemulator-env.sh to create it"
    )
    if os.environ.get(REQUIRED_ENV) == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def bigquery_emulator(tmp_path_factory) -> Iterator[str]:
    """``host:port`` of a running emulator, started for the session and stopped after it."""
    require_emulator()
    workdir = tmp_path_factory.mktemp("bqemulator")  # it reads .bqemu.toml from its working directory
    log = workdir / "emulator.log"
    env = {key: value for key, value in os.environ.items() if not key.startswith("BQEMU_")}
    started = time.monotonic()
    with log.open("wb") as out:
        process = subprocess.Popen(
            emulator_command(), cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        host = None
        while time.monotonic() - started < START_TIMEOUT_S:
            if process.poll() is not None:
                pytest.fail(
                    f"BigQuery emulator exited with {process.returncode} at start "
                    f"(scripts/bqemulator-env.sh installs what it needs):\n{_log_tail(log)}"
                )
            port = host is None and _listening_port(log)
            host = host or (f"127.0.0.1:{port}" if port else None)
            if host and _ready(host):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"BigQuery emulator not ready after {START_TIMEOUT_S:.0f} s:\n{_log_tail(log)}")
        print(f"\nBigQuery emulator ready at {host} in {time.monotonic() - started:.2f} s")
        yield host
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module", autouse=True)
def loopback_only() -> Iterator[None]:
    """While a module of these tests runs, only loopback names resolve: no request can leave."""
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK:
            raise OSError(f"tests/bigquery may only reach the local emulator, not {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket, "getaddrinfo", getaddrinfo)
        yield


@pytest.fixture(scope="module")
def emulator_settings(request) -> Settings:
    """Settings naming datasets of this module's own, so modules never see each other's tables."""
    suffix = f"{Path(request.module.__file__).stem}_{uuid.uuid4().hex[:8]}"
    return Settings(
        warehouse=f"bigquery://{PROJECT}",
        analytics_dataset=f"nba_analytics_{suffix}",
        precompute_dataset=f"nba_precompute_{suffix}",
        predictions_dataset=f"nba_predictions_{suffix}",
        retry_delays=(0.0, 0.0, 0.0),
    )


@pytest.fixture(scope="module")
def emulator_warehouse(bigquery_emulator, emulator_settings) -> Iterator[BigQueryWarehouse]:
    """The production BigQuery adapter, made by the factory, talking to the emulator."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EMULATOR_ENV, bigquery_emulator)
        warehouse = connect(emulator_settings, f"bigquery://{PROJECT}")
    assert isinstance(warehouse, BigQueryWarehouse)
    yield warehouse
    warehouse.close()


@pytest.fixture(scope="module")
def emulator_demo(emulator_warehouse, emulator_settings) -> BigQueryWarehouse:
    """The demo (seed 7) built into this module's datasets on the emulator by the production adapter."""
    started = time.monotonic()
    summary = demo.build_demo(emulator_warehouse, emulator_settings, seed=DEMO_SEED)
    print(f"\ndemo built on the emulator in {time.monotonic() - started:.2f} s")
    assert summary.player_game_rows > 20_000
    return emulator_warehouse


@pytest.fixture(scope="module")
def duckdb_demo(emulator_settings, tmp_path_factory) -> Iterator[DuckDBWarehouse]:
    """The reference: the same demo (same seed, same dataset names) in a DuckDB file."""
    path = tmp_path_factory.mktemp("duckdb-demo") / "warehouse.duckdb"
    warehouse = DuckDBWarehouse(emulator_settings.replace(warehouse=str(path)), path)
    demo.build_demo(warehouse, emulator_settings, seed=DEMO_SEED)
    yield warehouse
    warehouse.close()
