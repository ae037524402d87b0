"""Real-browser journeys: the console served by `streamlit run` on a free loopback port, driven by
Debian's Chromium through Playwright. Screenshots of every step go to artifacts/journeys/."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from backfill.config import Settings
from backfill.demo import build_demo_file

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


def _serve(tmp_path_factory):
    data = tmp_path_factory.mktemp("journey-data")
    settings = Settings(warehouse=str(data / "warehouse.duckdb"), ledger=str(data / "ledger.sqlite"))
    build_demo_file(settings.warehouse, settings)
    port = _free_port()
    env = os.environ | {
        "BACKFILL_WAREHOUSE": settings.warehouse,
        "BACKFILL_LEDGER": settings.ledger,
        "BACKFILL_RETRY_DELAYS": "0,0,0",
        "PYTHONPATH": str(ROOT),
    }
    log = open(data / "streamlit.log", "w")  # noqa: SIM115 - open for the server's whole life
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail(f"streamlit did not start; see {data / 'streamlit.log'}")
    yield url, settings
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
    log.close()


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
