"""A command imports what it uses (issue 26): each command's heavy libraries, pinned.

Each case runs ``python -m backfill ...`` as a real process under ``-X importtime``, which names
every module the process imported, and compares the heavy libraries among them with what the command
needs: the ledger needs SQLAlchemy; the warehouse's answers are pandas frames; DuckDB is opened only
to query; sqlglot only to translate a statement no earlier command translated. A new heavy import
at start-up then fails here, and making it is a visible choice (change the pin with a reason).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

HEAVY = ("pandas", "numpy", "pyarrow", "sqlalchemy", "duckdb", "sqlglot", "openpyxl", "google", "streamlit")
"""Libraries whose import a user waits for (pandas alone is about 0.3 s on the project's machines)."""

DECEMBER = ("--start", "2021-12-01", "--end", "2021-12-31")


def imported(argv: list[str], env: dict[str, str]) -> tuple[int, set[str]]:
    """The exit code of ``python -m backfill argv`` and every module the process imported."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "backfill", *argv],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    modules.discard("package")  # the header line
    assert modules, f"no import lines from {argv}: {done.stderr[-500:]}"
    return done.returncode, modules


def heavy(modules: set[str]) -> set[str]:
    return {name for name in HEAVY if name in modules}


@pytest.fixture
def env(tmp_path) -> dict[str, str]:
    """A process environment with no developer settings: a private ledger and cache folder."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("BACKFILL_")}
    return clean | {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CACHE_DIR": str(tmp_path / "cache"),
    }


@pytest.mark.parametrize("command", [[], ["run"], ["coverage"], ["runs"], ["check"], ["gaps"], ["stale"]])
def test_help_imports_no_heavy_library(command, env, demo_copy):
    code, modules = imported([*command, "--help", "--warehouse", str(demo_copy)], env)
    assert code == 0
    assert heavy(modules) == set()
    for name in ("pandas", "sqlalchemy", "duckdb", "sqlglot"):  # the four, by name
        assert name not in modules
    assert "backfill.runner" not in modules and "backfill.ledger" not in modules


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--start", "2021-12-31", "--end", "2021-12-01"],
        ["run", "--dates", "2021-13-01"],
        ["run", *DECEMBER, "--stages", "bogus"],
        ["coverage", "--start", "2021-12-31", "--end", "2021-12-01"],
    ],
)
def test_bad_input_is_answered_before_any_heavy_import(argv, env, demo_copy):
    code, modules = imported([*argv, "--warehouse", str(demo_copy)], env)
    assert code == 2
    assert heavy(modules) == set()
    assert "backfill.ledger" not in modules and "backfill.runner" not in modules


@pytest.mark.slow  # five commands, a run among them, as processes
def test_each_command_imports_what_it_uses(env, demo_copy):
    warehouse = ["--warehouse", str(demo_copy)]

    # A first run: the ledger (SQLAlchemy), the warehouse (DuckDB, pandas frames), and sqlglot to
    # translate its statements, which no earlier command left in the cache folder.
    code, modules = imported(["run", *DECEMBER, *warehouse], env)
    assert code == 0
    assert heavy(modules) == {"pandas", "numpy", "pyarrow", "sqlalchemy", "duckdb", "sqlglot"}
    assert "backfill.runner" in modules

    # The same run again finds its translations kept: no sqlglot.
    code, modules = imported(["run", *DECEMBER, *warehouse], env)
    assert code == 0
    assert heavy(modules) == {"pandas", "numpy", "pyarrow", "sqlalchemy", "duckdb"}

    # Listing runs reads the ledger only.
    code, modules = imported(["runs", *warehouse], env)
    assert code == 0
    assert heavy(modules) == {"sqlalchemy"}
    assert "backfill.runner" not in modules and "backfill.launch" not in modules

    # Cancelling goes through the launcher, which brings the runner (and pandas) only to run work.
    code, modules = imported(["runs", "cancel", "no-such-run", *warehouse], env)
    assert code == 2
    assert heavy(modules) == {"sqlalchemy"}
    assert "backfill.launch" in modules and "backfill.runner" not in modules

    # Coverage reads the warehouse (or the snapshot kept of it), never the ledger or the runner.
    code, modules = imported(["coverage", *DECEMBER, *warehouse], env)
    assert code == 0
    assert heavy(modules) - {"duckdb", "sqlglot"} == {"pandas", "numpy", "pyarrow"}
    assert "sqlalchemy" not in modules and "backfill.runner" not in modules

    # A check measures the warehouse and compares with the checks the ledger keeps; it runs nothing.
    code, modules = imported(["check", *DECEMBER, *warehouse], env)
    assert code in (0, 1)  # 1: December has blocked and stale dates to report
    assert heavy(modules) - {"duckdb", "sqlglot"} == {"pandas", "numpy", "pyarrow", "sqlalchemy"}
    assert "backfill.runner" not in modules and "backfill.launch" not in modules


@pytest.mark.slow
def test_a_first_coverage_look_translates_and_never_opens_the_ledger(env, demo_copy):
    code, modules = imported(["coverage", *DECEMBER, "--warehouse", str(demo_copy)], env)
    assert code == 0
    assert heavy(modules) == {"pandas", "numpy", "pyarrow", "duckdb", "sqlglot"}
    assert "backfill.ledger" not in modules
