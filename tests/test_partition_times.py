"""Which date partitions changed, from BigQuery's own metadata (INFORMATION_SCHEMA.PARTITIONS).

The adapter hook behind cheap page loads: one metadata query says when each date partition of the
stages' tables last changed, so a coverage snapshot can re-measure only those dates. Where the
warehouse cannot tell (DuckDB; the emulator, whose view reports one time for every partition), the
hook answers None and nothing is sent. A fake client stands in for BigQuery.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from google.api_core.exceptions import ServiceUnavailable
from google.cloud import bigquery

from backfill.config import Settings
from backfill.faults import TRANSIENT, classify
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV, BigQueryWarehouse
from tests.test_bigquery_adapter import PROJECT, FakeClient

UTC = dt.UTC
T0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
T1 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
DEC_1, DEC_31 = dt.date(2021, 12, 1), dt.date(2021, 12, 31)

PARTITION_ROWS = [
    # table_schema, table_name, partition_id, last_modified_time
    ("nba_analytics", "player_game_summary", "20211201", T0),
    ("nba_analytics", "player_game_summary", "20211202", T0),
    ("nba_precompute", "ml_feature_store", "20211201", T0),
    ("nba_precompute", "ml_feature_store", "20211202", T1),
    ("nba_predictions", "player_prop_predictions", "20211202", T1),
]


def partitions_answer(rows):
    frame = pd.DataFrame(rows, columns=["table_schema", "table_name", "partition_id", "last_modified_time"])
    schema = [
        bigquery.SchemaField("table_schema", "STRING"),
        bigquery.SchemaField("table_name", "STRING"),
        bigquery.SchemaField("partition_id", "STRING"),
        bigquery.SchemaField("last_modified_time", "TIMESTAMP"),
    ]
    return frame, schema


@pytest.fixture
def client() -> FakeClient:
    return FakeClient({"INFORMATION_SCHEMA.PARTITIONS": partitions_answer(PARTITION_ROWS)})


@pytest.fixture
def warehouse(client, monkeypatch) -> BigQueryWarehouse:
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    return BigQueryWarehouse(Settings(warehouse=f"bigquery://{PROJECT}"), PROJECT, client=client)


def stages(settings):
    return settings.pipeline.stages


def test_partition_times_are_one_metadata_query_of_every_stage_dataset(warehouse, client):
    times = warehouse.partition_times(stages(warehouse.settings), DEC_1, DEC_31)
    assert times == {
        ("played", DEC_1): T0,
        ("played", dt.date(2021, 12, 2)): T0,
        ("mlfs", DEC_1): T0,
        ("mlfs", dt.date(2021, 12, 2)): T1,
        ("predictions", dt.date(2021, 12, 2)): T1,
    }
    (call,) = client.queries
    for dataset in ("nba_analytics", "nba_precompute", "nba_predictions"):
        assert f"`{PROJECT}.{dataset}.INFORMATION_SCHEMA.PARTITIONS`" in call["sql"]
    params = {p.name: p for p in call["job_config"].query_parameters}
    # Values as parameters only: the range as partition ids, the tables as arrays.
    assert (params["first"].value, params["last"].value) == ("20211201", "20211231")
    assert sorted(params[f"tables_{n}"].values[0] for n in range(3)) == [
        "ml_feature_store",
        "player_game_summary",
        "player_prop_predictions",
    ]
    assert "2021" not in call["sql"] and "player_game_summary" not in call["sql"]


def test_changed_partitions_are_those_modified_after_since(warehouse):
    chosen = stages(warehouse.settings)
    assert warehouse.changed_partitions(chosen, T0, DEC_1, DEC_31) == {
        ("mlfs", dt.date(2021, 12, 2)),
        ("predictions", dt.date(2021, 12, 2)),
    }
    assert warehouse.changed_partitions(chosen, T1, DEC_1, DEC_31) == set()
    assert len(warehouse.changed_partitions(chosen, None, DEC_1, DEC_31)) == len(PARTITION_ROWS)


def test_renamed_datasets_are_asked_and_mapped_back_to_their_stages(client, monkeypatch):
    monkeypatch.delenv(EMULATOR_ENV, raising=False)
    settings = Settings(warehouse=f"bigquery://{PROJECT}", precompute_dataset="nba_precompute_scratch")
    client.answers = {
        "INFORMATION_SCHEMA.PARTITIONS": partitions_answer(
            [("nba_precompute_scratch", "ml_feature_store", "20211203", T1)]
        )
    }
    warehouse = BigQueryWarehouse(settings, PROJECT, client=client)
    mlfs = [settings.pipeline.stage("mlfs")]
    assert warehouse.partition_times(mlfs, DEC_1, DEC_31) == {("mlfs", dt.date(2021, 12, 3)): T1}
    assert f"`{PROJECT}.nba_precompute_scratch.INFORMATION_SCHEMA.PARTITIONS`" in client.sent[0]


def test_a_transient_failure_of_the_metadata_query_reaches_the_caller_as_transient(warehouse, client):
    client.failures = {"INFORMATION_SCHEMA.PARTITIONS": ServiceUnavailable("backend unavailable")}
    with pytest.raises(ServiceUnavailable) as raised:
        warehouse.partition_times(stages(warehouse.settings), DEC_1, DEC_31)
    assert classify(raised.value) == TRANSIENT


def test_the_emulator_does_not_track_partition_times_so_nothing_is_sent(client, monkeypatch):
    monkeypatch.setenv(EMULATOR_ENV, "127.0.0.1:9")
    warehouse = BigQueryWarehouse(Settings(), PROJECT, client=client)
    assert warehouse.partition_times(stages(warehouse.settings), DEC_1, DEC_31) is None
    assert warehouse.changed_partitions(stages(warehouse.settings), T0, DEC_1, DEC_31) is None
    assert client.queries == []


def test_duckdb_has_no_partition_times():
    settings = Settings()
    warehouse = connect(settings, ":memory:")
    assert warehouse.partition_times(settings.pipeline.stages, DEC_1, DEC_31) is None
    assert warehouse.changed_partitions(settings.pipeline.stages, None, DEC_1, DEC_31) is None
    assert warehouse.statements_issued == 0
