"""Every statement the CLI sends to BigQuery filters each stage table by its date column.

Tables with ``require_partition_filter = true`` refuse any other read. Every query job of every
client is recorded at the client's connection while the CLI's operations run in-process against the
emulator (the demo builder aside: it makes the tables), and each statement is checked with
sqlglot (tests/bigquery/partition_filters.py).
"""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr, redirect_stdout

import pytest
from google.cloud._http import JSONConnection

from backfill.access import local_user
from backfill.cli.main import main
from backfill.cost_labels import user_hash
from backfill.warehouse.bigquery import EMULATOR_ENV
from tests.bigquery.conftest import PROJECT
from tests.bigquery.partition_filters import stage_tables_of, unfiltered_reads, violations


@pytest.fixture
def jobs(monkeypatch) -> list[dict]:
    """The configuration of every job any client sends in the test (dry runs included)."""
    sent: list[dict] = []
    real = JSONConnection.api_request

    def api_request(self, method, path, **kwargs):
        if method == "POST" and str(path).endswith("/jobs"):
            sent.append(kwargs["data"]["configuration"])
        return real(self, method, path, **kwargs)

    monkeypatch.setattr(JSONConnection, "api_request", api_request)
    return sent


def test_the_checker_sees_an_unfiltered_read():
    tables = {"a.played": "game_date"}
    assert unfiltered_reads("SELECT MIN(game_date) FROM `p.a.played`", tables) == ["a.played"]
    assert unfiltered_reads("SELECT * FROM `p.a.played` WHERE game_date BETWEEN @s AND @e", tables) == []
    assert unfiltered_reads(
        "SELECT * FROM `p.a.played` AS x JOIN `p.a.played` AS y ON x.game_date = y.game_date "
        "WHERE x.game_date = @d",
        tables,
    ) == ["a.played"]


def test_every_cli_statement_filters_stage_tables_by_date_and_is_labelled(
    emulator_demo, emulator_settings, bigquery_emulator, jobs, tmp_path, monkeypatch
):
    monkeypatch.setenv(EMULATOR_ENV, bigquery_emulator)
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": emulator_settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": emulator_settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": emulator_settings.predictions_dataset,
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CACHE_DIR": str(tmp_path / "cache"),
        "BACKFILL_RETRY_DELAYS": "0,0,0",
    }
    december = ["--start", "2021-12-01", "--end", "2021-12-31"]
    operations = [
        ["coverage", "--by", "month", "--format", "json"],
        ["coverage", "--by", "date", *december],
        ["gaps", *december, "--output", str(tmp_path / "gaps.md")],
        ["stale", *december],
        ["run", *december, "--dry-run"],
        ["run", "--dates", "2021-12-07,2021-12-09"],
        ["stale", *december, "--delete", "--yes"],
        ["doctor"],
    ]
    actions = {"coverage": "check", "gaps": "check", "stale": "check", "run": "run", "doctor": "doctor"}
    labels_by_operation: dict[str, list[dict]] = {}
    for operation in operations:
        sent_before = len(jobs)
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()) as err:
            code = main(operation, environ=environ)
        assert code in (0, 1), (operation, err.getvalue())
        labels_by_operation[" ".join(operation)] = [job["labels"] for job in jobs[sent_before:]]
    statements = [job["query"]["query"] for job in jobs]
    assert len(statements) > 10
    assert violations(statements, stage_tables_of(emulator_settings)) == []

    # Every job says what it was for and who asked (a hash), so the bill can be split.
    me = user_hash(local_user())
    for operation, labels in labels_by_operation.items():
        command = operation.split()[0]
        deleting = "--delete" in operation
        for label in labels:
            if deleting and label["action"] != "check":  # its listing is a check, its delete is not
                expected = "stale_delete"
            elif "--dry-run" in operation:  # a plan reads, like a check
                expected = "check"
            else:
                expected = actions[command]
            assert label["action"] == expected, (operation, label)
            assert label["user"] == me, (operation, label)
    # The deletion's own job is labelled stale_delete; a run's replaces carry their stage.
    assert any(label["action"] == "stale_delete" for label in labels_by_operation[" ".join(operations[6])])
    run_labels = labels_by_operation[" ".join(operations[5])]
    assert {label.get("stage") for label in run_labels} >= {"mlfs", "predictions"}
