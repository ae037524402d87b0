"""``python -m backfill doctor`` against the emulator: every check passes on the demo, and a table
lacking a required column fails with a line that says what to add (exit 1). Nothing is written."""

from __future__ import annotations

import io
import os

import pytest
from google.cloud import bigquery
from google.cloud._http import JSONConnection

from backfill.cli.main import main
from backfill.warehouse.bigquery import EMULATOR_ENV
from backfill.warehouse.schema import ML_FEATURE_STORE
from tests.bigquery.conftest import PROJECT


def run_doctor(bigquery_emulator, settings, monkeypatch, **overrides) -> tuple[int, str, str]:
    monkeypatch.setenv(EMULATOR_ENV, bigquery_emulator)
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": f"bigquery://{PROJECT}",
        "BACKFILL_ANALYTICS_DATASET": settings.analytics_dataset,
        "BACKFILL_PRECOMPUTE_DATASET": settings.precompute_dataset,
        "BACKFILL_PREDICTIONS_DATASET": settings.predictions_dataset,
        **overrides,
    }
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    monkeypatch.setattr("sys.stderr", err)
    code = main(["doctor"], environ=environ)
    return code, out.getvalue(), err.getvalue()


def test_doctor_passes_on_the_demo_and_writes_nothing(
    emulator_demo, emulator_settings, bigquery_emulator, monkeypatch
):
    # Every REST request of any client (the doctor makes its own): the wire, the outer boundary.
    sent: list[dict] = []
    real_api_request = JSONConnection.api_request

    def api_request(self, method, path, **kwargs):
        sent.append({"method": method, "path": path, **kwargs})
        return real_api_request(self, method, path, **kwargs)

    monkeypatch.setattr(JSONConnection, "api_request", api_request)
    code, out, err = run_doctor(bigquery_emulator, emulator_settings, monkeypatch)
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[-1] == "ready: no check failed"
    names = {line.split(":", 1)[0].split(None, 1)[1] for line in lines[:-1]}
    assert {"warehouse", "location", f"dataset {emulator_settings.analytics_dataset}"} <= names
    assert {
        f"table {name}" for name in ("player_game_summary", "ml_feature_store", "player_prop_predictions")
    } <= names
    assert any(name.startswith("permission to write") for name in names)
    assert not [line for line in lines if line.startswith("FAIL")]
    # Only reads and dry runs reached the emulator: no job that runs, no change to anything.
    assert sent and {call["method"] for call in sent} <= {"GET", "POST"}
    jobs = [call["data"] for call in sent if call["method"] == "POST" and call["path"].endswith("/jobs")]
    # The other POSTs ask which permissions the account holds (tables.testIamPermissions).
    asked = [call["path"] for call in sent if call["method"] == "POST" and not call["path"].endswith("/jobs")]
    assert all(path.endswith(":testIamPermissions") for path in asked)
    assert jobs and all(job["configuration"]["dryRun"] for job in jobs)


def test_a_table_lacking_a_required_column_fails_with_what_to_add(
    emulator_demo, emulator_settings, bigquery_emulator, monkeypatch
):
    dataset = f"{emulator_settings.precompute_dataset}_lacking"
    client = emulator_demo.client
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{dataset}"), exists_ok=True)
    kinds = {"FLOAT64": "FLOAT", "INT64": "INTEGER"}
    schema = [
        bigquery.SchemaField(name, kinds.get(kind, kind))
        for name, kind in ML_FEATURE_STORE.columns
        if name != "feature_version"
    ]
    client.create_table(bigquery.Table(f"{PROJECT}.{dataset}.ml_feature_store", schema=schema))

    code, out, err = run_doctor(
        bigquery_emulator, emulator_settings, monkeypatch, BACKFILL_PRECOMPUTE_DATASET=dataset
    )
    assert code == 1, out
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL  table")]
    assert line == (
        f"FAIL  table ml_feature_store: {dataset}.ml_feature_store lacks column feature_version STRING "
        f"(required): add it with ALTER TABLE {dataset}.ml_feature_store ADD COLUMN feature_version STRING"
    )
    # A table the demo did not make is the team's: the built-in pipeline may not write there either.
    (pipeline,) = [line for line in out.splitlines() if line.startswith("FAIL  pipeline")]
    assert (
        "the built-in demo pipeline writes only to a warehouse built by python -m backfill demo" in pipeline
    )
    assert out.splitlines()[-1] == "2 check(s) failed"


@pytest.mark.parametrize("location", ["asia-northeast1"])
def test_a_configured_location_other_than_the_datasets_fails(
    emulator_demo, emulator_settings, bigquery_emulator, monkeypatch, location
):
    code, out, _ = run_doctor(
        bigquery_emulator, emulator_settings, monkeypatch, BACKFILL_BIGQUERY_LOCATION=location
    )
    assert code == 1
    (line,) = [line for line in out.splitlines() if line.startswith("FAIL  location")]
    assert f"configured to run in {location}" in line and "leave it empty" in line


def test_a_pipeline_stage_table_lacking_a_column_its_stage_names_fails(
    emulator_demo, emulator_settings, bigquery_emulator, monkeypatch, tmp_path
):
    dataset = f"{emulator_settings.predictions_dataset}_grading"
    client = emulator_demo.client
    client.create_dataset(bigquery.Dataset(f"{PROJECT}.{dataset}"), exists_ok=True)
    schema = [
        bigquery.SchemaField("game_date", "DATE"),
        bigquery.SchemaField("player_lookup", "STRING"),
        bigquery.SchemaField("grade", "FLOAT"),
        bigquery.SchemaField("processed_at", "TIMESTAMP"),
    ]
    client.create_table(bigquery.Table(f"{PROJECT}.{dataset}.prediction_grades", schema=schema))
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text(
        "[pipeline]\nreference = 'played'\n"
        "[stages.played]\ntable = 'nba_analytics.player_game_summary'\n"
        f"[stages.grades]\ntable = '{dataset}.prediction_grades'\nupstream = 'played'\n"
        "required_columns = ['game_date', 'player_lookup', 'grade', 'grader']\n"
        "processor = { kind = 'command', argv = ['python', 'grade.py'] }\n"
    )
    code, out, _ = run_doctor(
        bigquery_emulator, emulator_settings, monkeypatch, BACKFILL_PIPELINE=str(pipeline)
    )
    assert code == 1, out
    assert [line for line in out.splitlines() if line.startswith("FAIL")] == [
        f"FAIL  table prediction_grades: {dataset}.prediction_grades lacks column grader (in the stage's "
        "required_columns): add it, or name the table's own column in stages.grades of the pipeline file"
    ]
    assert (
        f"warn  partitioning prediction_grades: {PROJECT}.{dataset}.prediction_grades is not partitioned"
        in out
    )
