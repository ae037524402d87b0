"""With no pipeline file the built-in pipeline gives exactly what the two-stage code gave (issue 9).

The expected files in tests/golden/ were written by the CLI at commit e016b36, before stages became
data; see tests/golden/README.md. Only generation times and file paths are masked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # full reports and a backfill compared byte for byte with tests/golden

GOLDEN = Path(__file__).parent / "golden"
ROOT = Path(__file__).resolve().parents[1]


def _mask(text: str, folder: Path) -> str:
    text = text.replace(str(folder), "<dir>")
    text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(\+00:00| UTC)?", "<time>", text)
    return re.sub(r"\b\d{8}-\d{6}-[0-9a-f]{6}\b", "<run>", text)


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    folder = tmp_path_factory.mktemp("golden")
    env = {
        **os.environ,
        "BACKFILL_WAREHOUSE": str(folder / "w.duckdb"),
        "BACKFILL_LEDGER": str(folder / "l.sqlite"),
        "BACKFILL_USER": "golden",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("BACKFILL_PIPELINE", None)

    def run(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "backfill", *args], cwd=folder, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("demo", "--warehouse", "w.duckdb", "--seed", "7")
    return folder, run


def _same(actual: str, name: str, folder: Path) -> None:
    expected = (GOLDEN / name).read_text()
    assert _mask(actual, folder) == _mask(expected, Path("/tmp/golden"))


def test_builtin_pipeline_reports_exactly_as_before(cli):
    folder, run = cli
    _same(run("coverage", "--by", "month", "--format", "json"), "coverage_month.json", folder)
    _same(run("coverage", "--by", "month"), "coverage_month.txt", folder)
    _same(run("stale", "--start", "2021-12-01", "--end", "2021-12-31"), "stale.txt", folder)
    for name in ("gaps.md", "gaps.json", "gaps.csv"):
        run("gaps", "--output", name)
        _same((folder / name).read_text(), name, folder)


def test_builtin_pipeline_december_backfill_ends_exactly_as_before(cli):
    folder, run = cli
    run("run", "--start", "2021-12-01", "--end", "2021-12-31")
    _same(run("coverage", "--by", "month", "--format", "json"), "coverage_month_after.json", folder)
    dec = run("coverage", "--start", "2021-12-01", "--end", "2021-12-31", "--by", "date", "--format", "json")
    _same(dec, "coverage_dec_after.json", folder)
    run("gaps", "--output", "gaps_after.md")
    _same((folder / "gaps_after.md").read_text(), "gaps_after.md", folder)
