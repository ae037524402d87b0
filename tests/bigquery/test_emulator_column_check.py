"""The built-in processor against production-like BigQuery tables on the emulator: a REQUIRED
column it does not write stops the run before any write; a NULLABLE one is named in the dry run."""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import bigquery

from backfill import launch
from backfill.declared import DEMO_LABELS
from backfill.errors import BadInput
from backfill.request import BackfillRequest

TODAY = lambda: dt.date(2026, 11, 30)  # noqa: E731


@pytest.fixture(scope="module")
def client(emulator_demo):
    return emulator_demo.client


def widen(client, warehouse, stage, field: bigquery.SchemaField) -> None:
    """Recreate a stage's table (empty) with one column more, as the demo's own (its label kept): the
    built-in pipeline may write to it, so what stops the write is the column alone."""
    table_id = f"{warehouse.project}.{warehouse.settings.dataset_name(stage.dataset)}.{stage.table}"
    schema = [*client.get_table(table_id).schema, field]
    client.delete_table(table_id)
    table = bigquery.Table(table_id, schema=schema)
    table.labels = dict(DEMO_LABELS)
    client.create_table(table)


def test_a_required_column_stops_the_run_before_any_write_and_a_nullable_one_is_named(
    emulator_demo, emulator_settings, client
):
    pipeline = emulator_settings.pipeline
    request = BackfillRequest.build(emulator_settings, dates=["2021-12-07"], today=TODAY)

    widen(
        client, emulator_demo, pipeline.stage("predictions"), bigquery.SchemaField("analyst_note", "STRING")
    )
    warnings = launch.preflight(emulator_settings, emulator_demo, request)
    assert warnings == [
        "predictions: nba_predictions.player_prop_predictions column analyst_note is not written by the "
        "built-in predictions statement and will be NULL on replaced dates"
    ]

    widen(
        client,
        emulator_demo,
        pipeline.stage("mlfs"),
        bigquery.SchemaField("model_tag", "STRING", mode="REQUIRED"),
    )
    sent = emulator_demo.statements_issued
    with pytest.raises(BadInput, match="ml_feature_store has REQUIRED column model_tag"):
        launch.preflight(emulator_settings, emulator_demo, request)
    assert emulator_demo.statements_issued == sent  # metadata only: no job was sent
