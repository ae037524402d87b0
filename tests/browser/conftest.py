"""Real-browser journeys: the console served by `streamlit run` on a free loopback port, driven by
Debian's Chromium through Playwright. Screenshots of every step go to artifacts/journeys/."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backfill.config import Settings
from backfill.demo import build_demo_file
from backfill.ledger import Ledger

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "journeys"
CHROMIUM = os.environ.get("BACKFILL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _missing(reason: str):
    """Skip on a developer machine without a browser; fail in CI, where .ci/run installs it."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install it: see .ci/run)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def console(tmp_path_factory):
    """A console on a fresh demo warehouse and ledger: (base URL, settings)."""
    yield from _serve(tmp_path_factory)


@pytest.fixture
def fresh_console(tmp_path_factory):
    """A console server no browser has talked to yet: its base URL."""
    for url, _ in _serve(tmp_path_factory):
        yield url


@pytest.fixture
def fresh_console_and_settings(tmp_path_factory):
    """A console server of its own, for a journey that changes its data: (base URL, settings)."""
    yield from _serve(tmp_path_factory)


def _wait_until(ready, what: str, log: Path, timeout_s: float = 60) -> None:
    """Poll ``ready()`` until it is true or the deadline passes (then fail, naming the log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if ready():
                return
        time.sleep(0.3)
    pytest.fail(f"{what} did not start within {timeout_s:g} s; see {log}")


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def _serve(tmp_path_factory, env: dict[str, str] | None = None, args: tuple[str, ...] = (), prepare=None):
    """Serve the console on a fresh demo warehouse and ledger; yields (base URL, settings).

    ``env`` and ``args`` add to the server's environment and ``streamlit run`` options;
    ``prepare(environment)`` runs before the server starts (for example to record a run)."""
    data = tmp_path_factory.mktemp("journey-data")
    settings = Settings(warehouse=str(data / "warehouse.duckdb"), ledger=str(data / "ledger.sqlite"))
    build_demo_file(settings.warehouse, settings)
    port = _free_port()
    environment = (
        os.environ
        | {
            "BACKFILL_WAREHOUSE": settings.warehouse,
            "BACKFILL_LEDGER": settings.ledger,
            "BACKFILL_RETRY_DELAYS": "0,0,0",
            "PYTHONPATH": str(ROOT),
        }
        | (env or {})
    )
    if prepare is not None:
        prepare(environment)
    log_path = data / "streamlit.log"
    log = open(log_path, "w")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
         *args],
        cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until(
            lambda: urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok",
            "streamlit",
            log_path,
        )
        yield url, settings
    finally:
        _stop(server)
        log.close()


# -- sign-in through a real OpenID Connect provider ---------------------------------------------

OPERATOR = {"sub": "ada-0001", "email": "ada@example.com", "email_verified": True, "name": "Ada Operator"}
"""A user the provider knows, signed in with one click on its authorization page. Subject and
e-mail differ, so the journeys show which claim names the operator (``operator_claim``)."""

VIEWER_EMAIL = "viewer@example.com"
"""A user typed on the provider's authorization page: the provider makes its e-mail the subject."""


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory):
    """oidc-provider-mock on a free loopback port, knowing ``OPERATOR``: its base URL."""
    if importlib.util.find_spec("oidc_provider_mock") is None:
        _missing("oidc-provider-mock is not installed (requirements-dev.txt)")
    log_path = tmp_path_factory.mktemp("oidc-provider") / "provider.log"
    port = _free_port()
    with open(log_path, "w") as log:
        provider = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--port", str(port), "--user-claims", json.dumps(OPERATOR)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until(
                lambda: (
                    json.load(urllib.request.urlopen(f"{url}/.well-known/openid-configuration", timeout=2))[
                        "issuer"
                    ]
                    == url
                ),
                "the OpenID Connect provider",
                log_path,
            )
            yield url
        finally:
            _stop(provider)


def _secrets_file(directory: Path, provider_url: str) -> Path:
    """The console's ``[auth]`` section pointing at the provider, as the README shows it."""
    path = directory / "secrets.toml"
    path.write_text(
        "[auth]\n"
        'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "prediction-coverage-console"\n'
        'client_secret = "any-secret-the-test-provider-accepts"\n'
        f'server_metadata_url = "{provider_url}/.well-known/openid-configuration"\n'
    )
    return path


@pytest.fixture(scope="session")
def signed_in_console(tmp_path_factory, oidc_provider):
    """A console with sign-in through ``oidc_provider`` and ``OPERATOR`` as its only operator, whose
    ledger already holds one run with a blocked date (something to rerun): (base URL, settings, run id).

    Streamlit reads the secrets file named by ``--secrets.files`` instead of the working
    directory's ``.streamlit/secrets.toml``, so the repository's own file (if any) is left alone."""
    secrets_path = _secrets_file(tmp_path_factory.mktemp("console-secrets"), oidc_provider)
    operators = {"BACKFILL_OPERATORS": OPERATOR["email"], "BACKFILL_OPERATOR_CLAIM": "email"}

    def record_a_blocked_run(environment: dict[str, str]) -> None:
        # Through the CLI, as the operator: Dec 9's predictions meet the MLFS gate (exit 1).
        cli = subprocess.run(
            [sys.executable, "-m", "backfill", "run", "--dates", "2021-12-09", "--stages", "predictions"],
            cwd=ROOT, env=environment | {"BACKFILL_USER": OPERATOR["email"]}, capture_output=True, text=True,
        )  # fmt: skip
        assert cli.returncode == 1, f"the blocked run was not recorded: {cli.stderr.strip()}"

    for url, settings in _serve(
        tmp_path_factory,
        env=operators,
        args=("--secrets.files", str(secrets_path)),
        prepare=record_a_blocked_run,
    ):
        (blocked,) = Ledger(settings.ledger).list_runs()
        yield url, settings, blocked.run_id


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Journey:
    """A browser page plus numbered screenshots; a failed check names the screenshot of its step."""

    def __init__(self, page, name: str):
        self.page = page
        self.name = name
        self.step = 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        for old in ARTIFACTS.glob(f"{name}-*.png"):
            old.unlink()

    def shot(self, label: str) -> Path:
        self.step += 1
        path = ARTIFACTS / f"{self.name}-{self.step:02d}-{re.sub(r'[^a-z0-9]+', '-', label.lower())}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def check(self, condition: bool, label: str, detail: str = "") -> None:
        """Screenshot this step; fail naming the screenshot if the condition does not hold."""
        path = self.shot(label)
        assert condition, f"{label} failed{': ' + detail if detail else ''} (screenshot: {path})"

    def settle(self, timeout_ms: int = 30000) -> None:
        """Wait until Streamlit has finished running the script."""
        self.page.wait_for_timeout(300)
        self.page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=timeout_ms)
        self.page.wait_for_timeout(300)

    def grid_text(self, expect: str | None = None) -> list[str]:
        """Text of every data-grid cell on the page (st.dataframe draws on a canvas but keeps these
        for accessibility), once a cell containing ``expect`` (or any cell) is there."""
        cells = self.page.locator('[role="gridcell"]')
        target = cells.filter(has_text=expect) if expect else cells
        # A timeout is not an error here: the caller's check reports what is missing.
        with contextlib.suppress(Exception):
            target.first.wait_for(state="attached", timeout=20000)
        return [cells.nth(i).inner_text() for i in range(cells.count())]


@pytest.fixture
def journey(browser, console, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(30000)
    yield Journey(page, request.node.name.removeprefix("test_"))
    context.close()


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def signed_out_journey(browser, request):
    """A journey in a browser context of its own (no sign-in cookie from another journey)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(30000)
    yield Journey(page, request.node.name.removeprefix("test_"))
    context.close()
