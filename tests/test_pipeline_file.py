"""The pipeline file (SPEC 7.1): every stage a registry entry; a bad file refused at load, naming the field."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backfill.errors import BadInput
from backfill.pipeline import BUILTIN_PATH, builtin_pipeline, load_pipeline, parse_pipeline

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[pipeline]
reference = "played"

[stages.played]
table = "nba_analytics.player_game_summary"

[stages.mlfs]
table = "nba_precompute.ml_feature_store"
upstream = "played"
processor = { kind = "sql", builtin = "mlfs" }

[stages.predictions]
table = "nba_predictions.player_prop_predictions"
upstream = "mlfs"
gate_min_upstream_pct = 90
processor = { kind = "command", argv = ["python", "jobs/predict.py", "--dates", "{dates}"], max_parallel = 2 }
"""


def test_the_builtin_pipeline_is_the_demo_file_in_dependency_order():
    pipeline = builtin_pipeline()
    assert pipeline.path == "builtin" and BUILTIN_PATH.is_file()
    assert pipeline.reference.table_name == "nba_analytics.player_game_summary"
    assert pipeline.stage_names == ("mlfs", "predictions")
    predictions = pipeline.stage("predictions")
    assert (predictions.upstream, predictions.gate_min_upstream_pct) == ("mlfs", 90.0)
    assert predictions.key == ("game_date", "player_lookup", "system_id")


def test_stages_come_in_dependency_order_whatever_the_file_order():
    downstream_first = """
[pipeline]
reference = "played"
[stages.grading]
table = "nba_predictions.grades"
upstream = "predictions"
processor = { kind = "python", function = "jobs:grade" }
[stages.predictions]
table = "nba_predictions.player_prop_predictions"
upstream = "mlfs"
processor = { kind = "sql", builtin = "predictions" }
[stages.played]
table = "nba_analytics.player_game_summary"
[stages.mlfs]
table = "nba_precompute.ml_feature_store"
upstream = "played"
processor = { kind = "sql", builtin = "mlfs" }
"""
    assert parse_pipeline(downstream_first).stage_names == ("mlfs", "predictions", "grading")


def test_a_downstream_stage_follows_its_upstream_on_rerun():
    pipeline = parse_pipeline(GOOD)
    assert pipeline.downstream_of({"mlfs"}) == ("mlfs", "predictions")
    assert pipeline.downstream_of({"predictions"}) == ("predictions",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ('upstream = "mlfs"', 'upstream = "features"'),
            "stages.predictions.upstream names unknown stage 'features'",
        ),
        (('upstream = "played"', 'upstream = "predictions"'), "form a cycle through upstream"),
        (("[stages.mlfs]", "[stages.ml-fs]"), "stage name 'ml-fs' is not a plain identifier"),
        (
            ('kind = "sql"', 'kind = "shell"'),
            "stages.mlfs.processor.kind 'shell' is not one of sql, command, python",
        ),
        (('table = "nba_precompute.ml_feature_store"\n', ""), "stages.mlfs.table is missing"),
        (('"{dates}"', '"{day}"'), "stages.predictions.processor.argv has unknown placeholder {day}"),
        (
            ("gate_min_upstream_pct = 90", "gate_min_upstream_pct = 190"),
            "gate_min_upstream_pct must be a number from 0 to 100",
        ),
        (
            ('builtin = "mlfs"', 'builtin = "features"'),
            "stages.mlfs.processor.builtin 'features' is not one of mlfs, predictions",
        ),
        (
            ('reference = "played"', 'reference = "box_scores"'),
            "pipeline.reference names unknown stage 'box_scores'",
        ),
        (("max_parallel = 2", "max_parallel = 0"), "max_parallel must be a whole number of 1 or more"),
        (
            ('upstream = "played"\n', 'upstream = "played"\ncolour = "red"\n'),
            "stages.mlfs.colour is not a known field",
        ),
    ],
)
def test_a_bad_pipeline_file_is_refused_with_a_one_line_reason_naming_the_field(change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(BadInput) as refused:
        parse_pipeline(GOOD.replace(old, new, 1), "p.toml")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_an_unknown_prediction_system_is_refused_when_the_file_is_read():
    text = GOOD.replace(
        '{ kind = "sql", builtin = "mlfs" }',
        '{ kind = "sql", builtin = "predictions", systems = ["crystal_ball"] }',
    )
    with pytest.raises(BadInput, match="unknown prediction system 'crystal_ball'"):
        parse_pipeline(text)


def test_the_file_is_found_by_flag_then_environment_then_working_directory(tmp_path, monkeypatch):
    named = tmp_path / "named.toml"
    named.write_text(GOOD)
    monkeypatch.chdir(tmp_path)
    assert load_pipeline(environ={}).path == "builtin"
    (tmp_path / "pipeline.toml").write_text(
        GOOD.replace("gate_min_upstream_pct = 90", "gate_min_upstream_pct = 80")
    )
    assert load_pipeline(environ={}).stage("predictions").gate_min_upstream_pct == 80.0
    assert (
        load_pipeline(environ={"BACKFILL_PIPELINE": str(named)}).stage("predictions").gate_min_upstream_pct
        == 90.0
    )
    assert load_pipeline(named, environ={"BACKFILL_PIPELINE": "elsewhere.toml"}).path == str(named.resolve())
    with pytest.raises(BadInput, match="pipeline file missing.toml does not exist"):
        load_pipeline("missing.toml", environ={})


def test_the_cli_refuses_a_bad_pipeline_file_with_exit_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "pipeline.toml"
    bad.write_text(GOOD.replace('upstream = "mlfs"', 'upstream = "features"'))
    env = {
        **os.environ,
        "BACKFILL_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite"),
        "BACKFILL_CONFIG": os.devnull,
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [sys.executable, "-m", "backfill", "--pipeline", str(bad), "run", "--dates", "2021-12-07"],
        env=env,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "upstream names unknown stage 'features'" in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pipeline.toml"]
