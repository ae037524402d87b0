"""`python -m backfill console` (what `make run` runs): the configured warehouse, else the demo (issue 23).

The server itself is replaced by a recorder at the process boundary (``os.execvpe``); the browser
journey tests/browser/test_make_run.py serves a real one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from backfill import cli
from backfill.config import DEFAULT_WAREHOUSE, load_settings


@pytest.fixture
def exec_calls(monkeypatch):
    """Each exec as (argv, environment), instead of replacing the test's process."""
    calls: list[tuple[list[str], dict[str, str]]] = []
    monkeypatch.setattr(os, "execvpe", lambda file, argv, env: calls.append((list(argv), dict(env))))
    return calls


def _main(*argv: str, environ: dict[str, str]) -> int:
    return cli.main(list(argv), environ={"BACKFILL_CONFIG": os.devnull, **environ})


def test_the_configured_warehouse_is_served_not_the_demo(exec_calls, demo_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no data/warehouse.duckdb here: a demo build would create it
    other = tmp_path / "other.duckdb"
    shutil.copy(demo_file, other)
    assert _main("console", "--port", "8642", environ={"BACKFILL_WAREHOUSE": str(other)}) == 0
    ((argv, environment),) = exec_calls
    assert argv[1:4] == ["-m", "streamlit", "run"] and argv[-2:] == ["--server.port", "8642"]
    assert Path(argv[4]).name == "app.py" and Path(argv[4]).is_file()
    assert environment["BACKFILL_WAREHOUSE"] == str(other)
    assert environment["PORT"] == "8642"
    assert not (tmp_path / DEFAULT_WAREHOUSE).exists()


def test_the_config_files_warehouse_is_served(exec_calls, demo_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(demo_file, tmp_path / "team.duckdb")
    (tmp_path / "backfill.toml").write_text('warehouse = "team.duckdb"\n')
    assert cli.main(["console", "--port", "8642"], environ={}) == 0
    ((_, environment),) = exec_calls
    assert environment["BACKFILL_WAREHOUSE"] == "team.duckdb"


def test_a_configured_file_that_is_missing_is_refused_and_no_demo_is_built(
    exec_calls, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    missing = tmp_path / "typo.duckdb"
    assert _main("console", "--port", "8642", environ={"BACKFILL_WAREHOUSE": str(missing)}) == 2
    assert exec_calls == []
    assert not missing.exists() and not (tmp_path / DEFAULT_WAREHOUSE).exists()
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "typo.duckdb does not exist" in line


def test_with_nothing_configured_the_existing_demo_is_served(exec_calls, demo_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    shutil.copy(demo_file, tmp_path / DEFAULT_WAREHOUSE)
    before = (tmp_path / DEFAULT_WAREHOUSE).stat().st_mtime_ns
    assert _main("console", "--port", "8642", environ={}) == 0
    ((_, environment),) = exec_calls
    assert environment["BACKFILL_WAREHOUSE"] == DEFAULT_WAREHOUSE
    assert (tmp_path / DEFAULT_WAREHOUSE).stat().st_mtime_ns == before  # not rebuilt


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1", ""])
def test_a_bad_port_is_one_line_and_nothing_starts(exec_calls, demo_file, port, capsys):
    assert _main("console", "--port", port, environ={"BACKFILL_WAREHOUSE": str(demo_file)}) == 2
    assert exec_calls == []
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_alert_links_follow_the_port_unless_console_url_is_set(tmp_path):
    quiet = {"BACKFILL_CONFIG": os.devnull}
    assert load_settings(quiet).console_url == "http://localhost:8501"
    assert load_settings(quiet | {"PORT": "8600"}).console_url == "http://localhost:8600"
    chosen = quiet | {"PORT": "8600", "BACKFILL_CONSOLE_URL": "https://console.example.com"}
    assert load_settings(chosen).console_url == "https://console.example.com"
    config = tmp_path / "backfill.toml"
    config.write_text('console_url = "https://team.example.com"\n')
    assert load_settings({"PORT": "8600"}, config_file=config).console_url == "https://team.example.com"
