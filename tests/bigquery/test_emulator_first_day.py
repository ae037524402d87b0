"""A team's first day on BigQuery (SPEC 9.1): the demo's rows in tables the team made (no demo label),
no pipeline file. Reads work; every write of the built-in demo pipeline is refused before any job."""

from __future__ import annotations

import datetime as dt

import pytest
from google.cloud import bigquery

from backfill import launch
from backfill.errors import BadInput
from backfill.request import BackfillRequest
from backfill.warehouse import connect
from backfill.warehouse.bigquery import EMULATOR_ENV
from tests.bigquery.conftest import PROJECT

TODAY = lambda: dt.date(2026, 11, 30)  # noqa: E731
TABLES = {
    "analytics_dataset": "player_game_summary",
    "precompute_dataset": "ml_feature_store",
    "predictions_dataset": "player_prop_predictions",
}


@pytest.fixture(scope="module")
def team(emulator_demo, emulator_settings, bigquery_emulator):
    """Settings and the adapter for datasets holding copies of the demo's tables, made by a query."""
    client = emulator_demo.client
    renamed = {}
    for field, table in TABLES.items():
        source = getattr(emulator_settings, field)
        target = f"{source}_team"
        client.create_dataset(bigquery.Dataset(f"{PROJECT}.{target}"), exists_ok=True)
        client.query(
            f"CREATE TABLE `{PROJECT}.{target}.{table}` AS SELECT * FROM `{PROJECT}.{source}.{table}`"
        ).result()
        renamed[field] = target
    settings = emulator_settings.replace(**renamed)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(EMULATOR_ENV, bigquery_emulator)
        warehouse = connect(settings, f"bigquery://{PROJECT}")
    yield settings, warehouse
    warehouse.close()


def _counts(client, settings) -> dict[str, int]:
    return {
        table: next(
            iter(
                client.query(
                    f"SELECT COUNT(*) AS n FROM `{PROJECT}.{getattr(settings, field)}.{table}`"
                ).result()
            )
        )["n"]
        for field, table in TABLES.items()
    }


def test_the_demo_pipeline_writes_nothing_to_tables_the_demo_did_not_make(team, emulator_demo):
    settings, warehouse = team
    before = _counts(emulator_demo.client, settings)
    request = BackfillRequest.build(settings, dates=["2021-12-07"], today=TODAY)
    sent = warehouse.statements_issued
    for write in (
        lambda: launch.run_here(settings, request, "tester", warehouse=warehouse),
        lambda: launch.preflight(settings, warehouse, request),
        lambda: launch.delete_stale_rows(
            settings, dt.date(2021, 12, 1), dt.date(2021, 12, 31), "tester", warehouse=warehouse
        ),
    ):
        with pytest.raises(BadInput, match="declare your team's pipeline file"):
            write()
    assert warehouse.statements_issued == sent  # table metadata only: not one query job
    assert _counts(emulator_demo.client, settings) == before


def test_reads_still_work_on_the_teams_tables(team):
    from backfill.coverage import daily_coverage

    settings, warehouse = team
    daily = daily_coverage(warehouse, settings, dt.date(2021, 12, 1), dt.date(2021, 12, 7))
    assert set(daily["stage"]) == {"mlfs", "predictions"} and (daily["players_total"] > 0).any()
