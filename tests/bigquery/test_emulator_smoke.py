"""``python -m backfill smoke --scratch-suffix ...`` against the emulator: a demo in scratch datasets,
a one-date backfill and a stale-row deletion as production sends them, checked, then dropped; it
never touches a dataset it did not create."""

from __future__ import annotations

import os

import pytest
from google.api_core.exceptions import NotFound
from google.cloud import bigquery

from backfill.cli.main import main
from backfill.errors import BadInput
from backfill.smoke import SMOKE_LABELS
from backfill.warehouse.bigquery import EMULATOR_ENV
from tests.bigquery.conftest import PROJECT


def run_smoke(bigquery_emulator, settings, monkeypatch, capsys, *args) -> tuple[int, str, str]:
    monkeypatch.setenv(EMULATOR_ENV, bigquery_emulator)
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": settings.predictions_dataset,
    }
    capsys.readouterr()
    code = main(["smoke", *args], environ=environ)
    out, err = capsys.readouterr()
    return code, out, err


def scratch(settings, suffix: str) -> list[str]:
    return [f"{name}{suffix}" for name in sorted(settings.datasets.values())]


def exists(client, dataset: str) -> bool:
    try:
        client.get_dataset(f"{PROJECT}.{dataset}")
    except NotFound:
        return False
    return True


@pytest.fixture(scope="module")
def client(emulator_warehouse):
    return emulator_warehouse.client


def test_smoke_builds_backfills_deletes_checks_and_drops(
    emulator_warehouse, emulator_settings, bigquery_emulator, monkeypatch, client, capsys
):
    code, out, err = run_smoke(
        bigquery_emulator, emulator_settings, monkeypatch, capsys, "--scratch-suffix", "_scratch"
    )
    with capsys.disabled():
        print("\n" + out)
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    steps = [line.split(":", 1)[0] for line in lines[1:-1]]
    assert steps == [
        "OK    create scratch datasets",
        "OK    build demo",
        "OK    backfill 2021-12-07",
        "OK    coverage 2021-12-07",
        "OK    row counts",
        "OK    stale rows",
        "OK    drop scratch datasets",
    ]
    assert lines[-1] == "smoke passed: every step OK"
    # The emulator cannot bind parameters inside a script: each replace is 4 jobs in a session.
    assert "(mlfs 4 jobs; predictions 4 jobs)" in out
    assert "coverage 2021-12-07: mlfs ok 100.0%, predictions ok 100.0%" in out
    assert not any(exists(client, dataset) for dataset in scratch(emulator_settings, "_scratch"))


def test_smoke_refuses_a_dataset_it_did_not_create_and_writes_nothing(
    emulator_warehouse, emulator_settings, bigquery_emulator, monkeypatch, client, capsys
):
    theirs = f"{emulator_settings.precompute_dataset}_mine"
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{theirs}"))
    client.create_table(
        bigquery.Table(f"{PROJECT}.{theirs}.keep_me", schema=[bigquery.SchemaField("x", "INTEGER")])
    )
    code, out, err = run_smoke(
        bigquery_emulator, emulator_settings, monkeypatch, capsys, "--scratch-suffix", "_mine"
    )
    assert code == 2
    assert err == (
        f"error: dataset {theirs} already exists and was not made by smoke (no backfill_smoke=true label); "
        "smoke never touches it: choose another --scratch-suffix\n"
    )
    assert out == ""
    assert client.get_table(f"{PROJECT}.{theirs}.keep_me").schema[0].name == "x"
    # The adapter's own drop asks again: it never drops a dataset without smoke's label.
    with pytest.raises(BadInput, match="not labelled as made by this tool"):
        emulator_warehouse.drop_scratch_dataset(theirs, SMOKE_LABELS)
    assert exists(client, theirs)
    others = [name for name in scratch(emulator_settings, "_mine") if name != theirs]
    assert not any(exists(client, dataset) for dataset in others)


def test_a_scratch_dataset_left_by_an_interrupted_smoke_is_replaced(
    emulator_warehouse, emulator_settings, bigquery_emulator, monkeypatch, client, capsys
):
    leftover = bigquery.Dataset(f"{PROJECT}.{emulator_settings.analytics_dataset}_again")
    leftover.labels = {"backfill_smoke": "true"}
    client.create_dataset(leftover)
    code, out, _ = run_smoke(
        bigquery_emulator, emulator_settings, monkeypatch, capsys, "--scratch-suffix", "_again"
    )
    assert code == 0, out
    assert not any(exists(client, dataset) for dataset in scratch(emulator_settings, "_again"))


@pytest.mark.parametrize("suffix", ["", "-x", "_a.b", "_é"])
def test_a_bad_suffix_is_bad_input(emulator_settings, bigquery_emulator, monkeypatch, capsys, suffix):
    code, out, err = run_smoke(
        bigquery_emulator, emulator_settings, monkeypatch, capsys, "--scratch-suffix", suffix
    )
    assert (code, out) == (2, "")
    assert err.startswith("error: ") and err.count("\n") == 1


def test_a_failed_step_is_one_fail_line_and_the_datasets_are_still_dropped(
    emulator_warehouse, emulator_settings, client
):
    from google.api_core.exceptions import BadRequest

    from backfill.smoke import run_smoke as smoke_steps
    from backfill.smoke import scratch_settings
    from backfill.warehouse.bigquery import BigQueryWarehouse
    from tests.bigquery.clients import Fault, FaultyClient

    settings = scratch_settings(emulator_settings, "_failing")
    faulty = FaultyClient(
        client,
        faults=[
            Fault(lambda sql: "CREATE TEMP TABLE stale_keep" in sql, BadRequest("Syntax error: injected"))
        ],
    )
    warehouse = BigQueryWarehouse(settings, PROJECT, client=faulty, scripts_bind_parameters=False)
    steps = list(smoke_steps(warehouse, settings))
    assert [(step.name, step.ok) for step in steps][-2:] == [
        ("stale rows", False),
        ("drop scratch datasets", True),
    ]
    assert steps[-2].line().startswith("FAIL  stale rows: BadRequest: ")
    assert "injected" in steps[-2].line() and steps[-2].line().endswith(
        "(see the error and README, IAM roles)"
    )
    assert not any(exists(client, dataset) for dataset in scratch(emulator_settings, "_failing"))
