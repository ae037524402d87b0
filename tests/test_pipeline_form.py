"""A run's pipeline is judged by meaning, not bytes (issue 23): comments, labels and the order of the
stages in the file do not block a resume or rerun; a change that matters is named."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from backfill.pipeline import parse_pipeline
from backfill.pipeline_form import differences, normal_form

ROOT = Path(__file__).resolve().parents[1]
TEAM = (ROOT / "examples" / "team_pipeline" / "pipeline.toml").read_text()
DEMO = (ROOT / "backfill" / "pipelines" / "demo.toml").read_text()


def _blocks(text: str) -> tuple[str, list[str]]:
    """The file's header (up to its first stage) and each ``[stages.X]`` section as text."""
    parts = re.split(r"(?m)^(?=\[stages\.)", text)
    return parts[0], parts[1:]


def _form(text: str) -> dict:
    return normal_form(parse_pipeline(text, "pipeline.toml"))


def test_a_comment_a_label_and_the_order_of_stages_change_nothing():
    header, blocks = _blocks(TEAM)
    edited = header + "# a note for the next reader\n" + "".join(reversed(blocks))
    edited = edited.replace('label = "Grades"', 'label = "Grades (new)"')
    assert differences(_form(TEAM), _form(edited)) == []


def test_the_order_of_required_columns_and_declared_columns_changes_nothing():
    edited = TEAM.replace(
        'required_columns = ["game_date", "player_lookup", "history_games"',
        'required_columns = ["player_lookup", "game_date", "history_games"',
    ).replace('columns = { game_date = "DATE NOT NULL", player_lookup = "STRING NOT NULL",',
              'columns = { player_lookup = "STRING NOT NULL", game_date = "DATE NOT NULL",')  # fmt: skip
    assert edited != TEAM
    assert differences(_form(TEAM), _form(edited)) == []


def test_a_changed_argv_is_named_with_its_stage():
    edited = TEAM.replace('"jobs/player_prop_predictions_backfill.py", "--dates"', '"jobs/v2.py", "--dates"')
    assert differences(_form(TEAM), _form(edited)) == ["stage predictions: processor argv changed"]


def test_a_changed_gate_a_version_and_a_new_column_are_each_named():
    edited = DEMO.replace("gate_min_upstream_pct = 90", "gate_min_upstream_pct = 80").replace(
        'current_version = "features_v3"', 'current_version = "features_v4"'
    )
    assert differences(_form(DEMO), _form(edited)) == [
        "stage mlfs: current_version changed",
        "stage predictions: gate_min_upstream_pct changed",
    ]
    grades = TEAM.replace('went_over = "BOOL",', 'went_over = "BOOL", margin = "FLOAT64",')
    assert differences(_form(TEAM), _form(grades)) == ["stage grading: columns changed"]


def test_a_removed_stage_is_named():
    header, blocks = _blocks(TEAM)
    without_grades = header + "".join(block for block in blocks if "[stages.grading]" not in block)
    assert differences(_form(TEAM), _form(without_grades)) == ["stage grading removed"]
    assert differences(_form(without_grades), _form(TEAM)) == ["stage grading added"]


# -- generated edits ---------------------------------------------------------------------------------

COMMENT_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r"), max_size=40
)


@settings(max_examples=60, deadline=None)
@given(
    order=st.permutations(range(len(_blocks(TEAM)[1]))),
    comments=st.lists(st.tuples(st.integers(min_value=0), COMMENT_TEXT), max_size=5),
    label=st.text(alphabet=st.characters(categories=("L", "N", "Zs")), max_size=20),
)
def test_any_reordering_comments_and_labels_mean_the_same(order, comments, label):
    header, blocks = _blocks(TEAM)
    lines = (header + "".join(blocks[i] for i in order)).splitlines()
    for at, text in comments:  # a comment on a line of its own, anywhere
        lines.insert(at % (len(lines) + 1), f"# {text}")
    edited = "\n".join(lines).replace('label = "MLFS"', f'label = "{label}"') + "\n"
    assert differences(_form(TEAM), _form(edited)) == []


@settings(max_examples=60, deadline=None)
@given(
    stage=st.sampled_from(["mlfs", "predictions", "grading"]),
    extra=st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=12),
)
def test_any_argv_change_is_named_once_for_its_stage(stage, extra):
    script = {
        "mlfs": "ml_feature_store",
        "predictions": "player_prop_predictions",
        "grading": "prediction_grades",
    }
    old = f'"jobs/{script[stage]}_backfill.py", "--dates", "{{dates}}"'
    edited = TEAM.replace(old, f'{old}, "--tag", "{extra}"')
    assert differences(_form(TEAM), _form(edited)) == [f"stage {stage}: processor argv changed"]
