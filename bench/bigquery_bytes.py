"""Bytes per Coverage page load and per 31-date backfill on BigQuery, from dry runs (issue 11).

No real project is reachable here, so the demo is built into the local BigQuery emulator and the
production adapter dry-runs every statement there. The emulator's dry runs report 0 bytes
processed, so on it the billed figure is BigQuery's floor alone: 10 MB per table each query
references. On a real project the same functions (``backfill.cost_report``) give real figures.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import tempfile
import time
from pathlib import Path

from backfill.config import Settings
from backfill.cost_report import backfill_report, page_load_report
from backfill.demo import build_demo_in_place
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV
from tests.bigquery.conftest import EMULATOR, PROJECT, _listening_port, _ready, emulator_command

START_TIMEOUT_S = 60.0


def measure(seasons: int = 1) -> dict | None:
    """{"page_load": {...}, "backfill_31_dates": {...}} from the emulator, or None without it."""
    if not EMULATOR.exists():
        return None
    with tempfile.TemporaryDirectory(prefix="bench-bqemu-") as folder:
        log = Path(folder) / "emulator.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("BQEMU_")}
        with log.open("wb") as out:
            process = subprocess.Popen(
                emulator_command(), cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            host = _wait(process, log)
            previous = os.environ.get(EMULATOR_ENV)
            os.environ[EMULATOR_ENV] = host
            try:
                settings = Settings(warehouse=f"bigquery://{PROJECT}")
                warehouse = connect(settings)
                summary = build_demo_in_place(warehouse, settings, seasons=seasons)
                page = page_load_report(warehouse, settings, summary.first_date, summary.last_date)
                backfill = backfill_report(warehouse, settings, dt.date(2021, 12, 1), days=31)
                warehouse.close()
            finally:
                if previous is None:
                    os.environ.pop(EMULATOR_ENV, None)
                else:
                    os.environ[EMULATOR_ENV] = previous
        finally:
            process.terminate()
            process.wait(timeout=30)
    return {
        "page_load": page.as_dict(),
        "backfill_31_dates": backfill.as_dict(),
        "where": "the BigQuery emulator",
    }


def _wait(process: subprocess.Popen, log: Path) -> str:
    """The emulator's ``host:port`` once it answers (a polled condition with a deadline)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the BigQuery emulator exited at start; see {log}")
        port = _listening_port(log)
        if port and _ready(f"127.0.0.1:{port}"):
            return f"127.0.0.1:{port}"
        time.sleep(0.05)
    raise RuntimeError(f"the BigQuery emulator did not start within {START_TIMEOUT_S:g} s; see {log}")


if __name__ == "__main__":
    import json

    print(json.dumps(measure(), indent=2, default=str))
