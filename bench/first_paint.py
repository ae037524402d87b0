"""First real figure of each console page in Chromium, beside a toy Streamlit page (issue 23).

*Fresh server* ("cold") is a page opened as the first request of a fresh ``streamlit run`` on a fresh
copy of the demo warehouse (nothing cached in the server, a new browser context); *fresh tab*
("warm") is the same page opened again, in a new browser context, on that server, once the cold page
is complete. The moment measured is the page's first *real figure*: Overview's first metric value,
Coverage's first heatmap, the Gaps table, the Backfill form's launch button, the Runs and History
tables (or, with nothing recorded yet, their one line saying so) -- not the title, which app.py draws
before anything is read. *Complete* is the page's first script run ended. The toy page
(``bench/toy_page.py``: a title and one metric) is measured the same way in the same run, and each
page's ratio to it is reported (target: at most 1.5x the toy in a fresh tab). Each figure is the
median of ``runs`` measurements.

    python -m bench.first_paint            # prints {page: {"cold": s, "warm": s, ..., "warm_ratio": x}}

The benchmark calls :func:`first_paint` and reports its figures beside the others.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BACKFILL_CHROMIUM", "/usr/bin/chromium")
PAGES = {
    "overview": "",
    "coverage": "/coverage",
    "gaps": "/gaps",
    "backfill": "/backfill",
    "runs": "/runs",
    "history": "/history",
}
"""Page name -> path, as a link opens it."""

TARGET_RATIO = 1.5
"""Issue 23: a page's first real figure in a fresh tab at most this many times the toy page's."""

TOY = "toy"
"""The toy page's name among the results."""

REAL_FIGURE = {
    "overview": '[data-testid="stMain"] [data-testid="stMetricValue"]',
    "coverage": '[data-testid="stMain"] [data-testid="stVegaLiteChart"] canvas, '
    '[data-testid="stMain"] [data-testid="stVegaLiteChart"] svg',
    "gaps": '[data-testid="stMain"] [data-testid="stDataFrame"]',
    "backfill": '[data-testid="stMain"] button:has-text("Launch backfill")',
    "runs": '[data-testid="stMain"] [data-testid="stDataFrame"], [data-testid="stMain"] :text("No runs recorded yet")',
    "history": '[data-testid="stMain"] [data-testid="stDataFrame"], '
    '[data-testid="stMain"] :text("No check has run on this warehouse yet")',
    TOY: '[data-testid="stMain"] [data-testid="stMetricValue"]',
}
"""What counts as each page's first real figure (a CSS/Playwright selector)."""

TOY_PAGE = ROOT / "bench" / "toy_page.py"
COMPLETE = '[data-testid="stApp"][data-test-script-state="notRunning"]'
"""The app's script run has ended (Streamlit's own marker): after the title, the page is complete."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _server(demo: Path, scratch: Path, script: str = "app.py") -> Iterator[str]:
    """A fresh console server (or the toy page's) on a fresh copy of the demo warehouse and an empty
    ledger: its URL."""
    warehouse = scratch / "warehouse.duckdb"
    shutil.copyfile(demo, warehouse)
    port = _free_port()
    environment = os.environ | {
        "BACKFILL_WAREHOUSE": str(warehouse),
        "BACKFILL_LEDGER": str(scratch / "ledger.sqlite"),
        "BACKFILL_CONFIG": os.devnull,
        "PYTHONPATH": str(ROOT),
    }
    with open(scratch / "streamlit.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", script, "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError):
                    if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                        break
                time.sleep(0.2)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def _open(browser, url: str, figure: str) -> tuple[float, float]:
    """Seconds from navigation to the page's first real figure drawn (``figure``, a selector), and to
    the page complete, in a browser context of its own."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(url, wait_until="commit")
        page.locator(figure).first.wait_for(timeout=60000)
        first_content = time.perf_counter() - started
        page.locator(COMPLETE).first.wait_for(timeout=60000)
        return first_content, time.perf_counter() - started
    finally:
        context.close()


def _demo(scratch: Path) -> Path:
    from backfill.config import Settings
    from backfill.demo import build_demo_file

    path = scratch / "demo.duckdb"
    build_demo_file(str(path), Settings(warehouse=str(path)))
    return path


def first_paint(runs: int = 5, pages: dict[str, str] = PAGES) -> dict[str, dict[str, float]]:
    """{page: {"cold": s, "warm": s, "cold_complete": s, "warm_complete": s, "cold_ratio": x,
    "warm_ratio": x}} and the same for ``toy`` (its ratios 1): medians of ``runs`` fresh servers per
    page, the toy page measured in each round beside them."""
    from playwright.sync_api import sync_playwright

    kinds = ("cold", "warm", "cold_complete", "warm_complete")
    measured = {**pages, TOY: ""}
    timings: dict[str, dict[str, list[float]]] = {name: {kind: [] for kind in kinds} for name in measured}
    with tempfile.TemporaryDirectory(prefix="first-paint-") as folder, sync_playwright() as playwright:
        scratch = Path(folder)
        demo = _demo(scratch)
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for run in range(runs):
                for name, path in measured.items():
                    place = scratch / f"{name}-{run}"
                    place.mkdir()
                    script = str(TOY_PAGE) if name == TOY else "app.py"
                    with _server(demo, place, script) as url:
                        for when in ("cold", "warm"):
                            first_content, complete = _open(browser, f"{url}{path}", REAL_FIGURE[name])
                            timings[name][when].append(first_content)
                            timings[name][f"{when}_complete"].append(complete)
        finally:
            browser.close()
    figures = {
        name: {kind: round(statistics.median(values), 2) for kind, values in per_kind.items()}
        for name, per_kind in timings.items()
    }
    toy = figures[TOY]
    for figure in figures.values():
        for when in ("cold", "warm"):
            figure[f"{when}_ratio"] = round(figure[when] / toy[when], 2) if toy[when] else float("nan")
    return figures


if __name__ == "__main__":
    figures = first_paint(runs=int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(json.dumps(figures, indent=2))
    slow = [name for name, figure in figures.items() if figure["warm_ratio"] > TARGET_RATIO]
    sys.exit(1 if slow else 0)
