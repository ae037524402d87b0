"""`make run` serves the warehouse the settings name (BACKFILL_WAREHOUSE), not the demo (issue 23)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

from tests.browser.conftest import ROOT, _free_port, _stop, _wait_until


def test_make_run_serves_the_warehouse_of_backfill_warehouse(signed_out_journey, demo_file, tmp_path):
    other = tmp_path / "other.duckdb"
    shutil.copy(demo_file, other)
    port = _free_port()
    log_path = tmp_path / "make-run.log"
    environment = os.environ | {
        "BACKFILL_WAREHOUSE": str(other),
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CONFIG": os.devnull,  # no backfill.toml of the developer's
        "PORT": str(port),
        "STREAMLIT_SERVER_HEADLESS": "true",
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    with open(log_path, "w") as log:
        # -o: the shared environment counts as installed (never reinstalled by a test).
        server = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until(
                lambda: urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok",
                "make run",
                log_path,
            )
            journey = signed_out_journey
            journey.page.goto(url)
            sidebar = journey.page.locator('[data-testid="stSidebar"]')
            sidebar.get_by_text("DuckDB file").wait_for()
            caption = sidebar.inner_text()
            journey.check(str(other.resolve()) in caption, "the sidebar names other.duckdb", caption)
            journey.check(not (ROOT / "data" / "other.duckdb").exists(), "no demo built elsewhere")
        finally:
            _stop(server)
            # The server make started, should make not pass the signal on.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, signal.SIGTERM)
    assert Path(other).exists()
