"""Configuration that refuses what it does not understand (issue 21, 5): ledger and warehouse URLs by
scheme, unknown BACKFILL_* variables, retry delays, and the pipeline file's gaps. Each refusal is
exit 2 with one line, and neither the warehouse nor the ledger changes (checked by their bytes).
The generated suites below run 120 + 120 + 80 = 320 cases."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import string
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill import cli
from backfill.config import ledger_location, load_settings
from backfill.errors import BadInput
from backfill.ledger import Ledger
from backfill.pipeline import parse_pipeline

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
[pipeline]
reference = "played"

[stages.played]
table = "nba_analytics.player_game_summary"

[stages.mlfs]
table = "nba_precompute.ml_feature_store"
upstream = "played"
bootstrap_min_history = 3
processor = { kind = "sql", builtin = "mlfs" }

[stages.predictions]
table = "nba_predictions.player_prop_predictions"
upstream = "mlfs"
gate_min_upstream_pct = 90
processor = { kind = "command", argv = ["python", "jobs/predict.py", "--dates", "{dates}"] }
"""

ARGV = '["python", "jobs/predict.py", "--dates", "{dates}"]'

# Every gap of the list, as an edit of the good file, with the words its refusal must say.
PIPELINE_GAPS = {
    "lone { in argv": ((ARGV, '["python", "jobs/predict.py", "{"]'), "lone brace"),
    "lone } in argv": ((ARGV, '["python", "jobs/predict.py", "x}"]'), "lone brace"),
    "a program that does not exist": ((ARGV, '["no-such-program-anywhere", "{dates}"]'), "is not found"),
    "a script that does not exist": ((ARGV, '["./jobs/missing.sh", "{dates}"]'), "is not found"),
    "unknown key in [pipeline]": (
        ('reference = "played"', 'reference = "played"\nrefrence = "played"'),
        "pipeline.refrence is not a known field",
    ),
    "reference of the wrong type": (
        ('reference = "played"', 'reference = ["played"]'),
        "must be a stage name",
    ),
    "[pipeline] of the wrong type": (
        ('[pipeline]\nreference = "played"', "pipeline = 5"),
        "pipeline must be a table",
    ),
    "label of the wrong type": (
        ('upstream = "played"', 'upstream = "played"\nlabel = [1]'),
        "label must be a string",
    ),
    "current_version of the wrong type": (
        ('upstream = "played"', 'upstream = "played"\nversion_column = "v"\ncurrent_version = {a = 1}'),
        "current_version must be a string",
    ),
    "systems of the wrong type": (
        ('{ kind = "sql", builtin = "mlfs" }', '{ kind = "sql", builtin = "predictions", systems = 5 }'),
        "systems",
    ),
    "a stage whose table is the reference": (
        ('table = "nba_precompute.ml_feature_store"', 'table = "nba_analytics.player_game_summary"'),
        "is the reference stage's table",
    ),
    "bootstrap_min_history beyond any season": (
        ("bootstrap_min_history = 3", "bootstrap_min_history = 500"),
        "beyond any season",
    ),
    "deep nesting": (("bootstrap_min_history = 3", "x = " + "[" * 5000 + "]" * 5000), ""),
}


def refused(text: str, folder: Path) -> str:
    path = folder / "pipeline.toml"
    path.write_text(text)
    with pytest.raises(BadInput) as refusal:
        parse_pipeline(text, str(path))
    message = str(refusal.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("case", list(PIPELINE_GAPS))
def test_each_gap_of_the_pipeline_file_is_refused_in_one_line(case, tmp_path):
    (old, new), words = PIPELINE_GAPS[case]
    assert old in GOOD
    assert words in refused(GOOD.replace(old, new, 1), tmp_path)


def test_the_good_file_of_these_examples_loads(tmp_path):
    (tmp_path / "pipeline.toml").write_text(GOOD)
    assert parse_pipeline(GOOD, str(tmp_path / "pipeline.toml")).stage_names == ("mlfs", "predictions")


def test_a_non_utf8_pipeline_file_is_refused(tmp_path):
    path = tmp_path / "pipeline.toml"
    path.write_bytes(GOOD.encode().replace(b"played", b"pl\xe9yed", 1))
    from backfill.pipeline import load_pipeline

    with pytest.raises(BadInput, match="is not UTF-8 text"):
        load_pipeline(path, environ={})


def test_a_script_beside_the_pipeline_file_is_found(tmp_path):
    (tmp_path / "jobs").mkdir()
    script = tmp_path / "jobs" / "predict.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    text = GOOD.replace(ARGV, '["./jobs/predict.sh", "{dates}"]')
    assert parse_pipeline(text, str(tmp_path / "pipeline.toml")).stage("predictions").processor.argv[0] == (
        "./jobs/predict.sh"
    )


def _chain(stages: int) -> str:
    """A pipeline of ``stages`` stages in a chain, written downstream first (the slow order)."""
    parts = ['[pipeline]\nreference = "s0"\n\n[stages.s0]\ntable = "d.t0"\n']
    for n in range(stages - 1, 0, -1):
        parts.append(
            f'[stages.s{n}]\ntable = "d.t{n}"\nupstream = "s{n - 1}"\n'
            'processor = { kind = "sql", builtin = "mlfs" }\n'
        )
    return "\n".join(parts)


def test_a_long_chain_of_stages_loads_in_dependency_order():
    pipeline = parse_pipeline(_chain(300))
    assert pipeline.stage_names == tuple(f"s{n}" for n in range(1, 300))


# -- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given_location", "read_as"),
    [
        ("PostgreSQL://u@h:5432/db", "postgresql://u@h:5432/db"),
        ("POSTGRES://u@h/db", "postgres://u@h/db"),
        ("postgresql+PSYCOPG://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///data/ledger.sqlite", "data/ledger.sqlite"),
        ("SQLite:////tmp/ledger.sqlite", "/tmp/ledger.sqlite"),
        ("data/ledger.sqlite", "data/ledger.sqlite"),
    ],
)
def test_ledger_urls_are_read_by_scheme_case_insensitively(given_location, read_as):
    assert ledger_location(given_location) == read_as


@pytest.mark.parametrize("location", ["mysql://u@h/db", "http://h/x", "sqlite://host/x", "", "file:///x"])
def test_a_ledger_url_of_another_scheme_is_refused(location, tmp_path):
    with pytest.raises(BadInput):
        ledger_location(location)
    with pytest.raises(BadInput):
        Ledger(location)


def test_an_unknown_backfill_variable_is_refused_naming_the_nearest_setting():
    with pytest.raises(
        BadInput, match="unknown environment variable BACKFILL_LEDGR; did you mean BACKFILL_LEDGER"
    ):
        load_settings({"BACKFILL_CONFIG": os.devnull, "BACKFILL_LEDGR": "x.sqlite"})
    with pytest.raises(BadInput, match="BACKFILL_OPERATOR; did you mean BACKFILL_OPERATORS"):
        load_settings({"BACKFILL_CONFIG": os.devnull, "BACKFILL_OPERATOR": "ann"})


def test_variables_the_product_sets_or_reads_are_accepted():
    product = {
        name: "1"
        for name in (
            "BACKFILL_DATES",
            "BACKFILL_RUN_ID",
            "BACKFILL_STAGE",
            "BACKFILL_USER",
            "BACKFILL_MIN_UPSTREAM_COVERAGE_PCT",
            "BACKFILL_SKIP_GATES",
            "BACKFILL_ALERT_WEBHOOK_URL",
            "BACKFILL_SMTP_PASSWORD",
            "BACKFILL_SECRETS_FILE",
            "BACKFILL_CRASH_AT",
        )
    }
    load_settings({"BACKFILL_CONFIG": os.devnull, **product})


@pytest.mark.parametrize(
    ("file_text", "words"),
    [
        ("retry_delays = []", "retry_delays is empty"),
        ('retry_delays = ""', "retry_delays is empty"),
        ("retry_delays = [1e9]", "retry_delays must be between 0 and 3600"),
        ("alert_retry_delays = [1e9]", "alert_retry_delays must be between 0 and 300"),
        ("alert_retry_delays = []", "alert_retry_delays is empty"),
        ('ledgr = "x"', "unknown setting(s): ledgr; did you mean ledger"),
    ],
)
def test_empty_or_unbounded_retry_delays_are_refused(tmp_path, file_text, words):
    config = tmp_path / "backfill.toml"
    config.write_text(file_text + "\n")
    with pytest.raises(BadInput) as refusal:
        load_settings({"BACKFILL_CONFIG": str(config)})
    assert words in str(refusal.value)


@pytest.mark.parametrize("url", ["MYSQL://u@h/db", "DuckDB:///x.duckdb", "bigQuery://"])
def test_warehouse_schemes_are_read_case_insensitively(url):
    from backfill.warehouse import scheme

    if url.lower().startswith(("duckdb", "bigquery")):
        assert scheme(url) == url.split("://")[0].lower()
    else:
        with pytest.raises(BadInput):
            scheme(url)


# -- in a real process -----------------------------------------------------------------------------


def _cli(tmp_path: Path, **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "backfill", "run", "--dates", "2021-12-07"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "BACKFILL_CONFIG": os.devnull, **environment},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("environment", "words"),
    [
        ({"BACKFILL_LEDGER": "mysql://u@h/db"}, "scheme 'mysql' is not known"),
        ({"BACKFILL_LEDGR": "ledger.sqlite"}, "did you mean BACKFILL_LEDGER"),
    ],
)
def test_a_mistyped_ledger_exits_2_and_creates_no_file(tmp_path, environment, words):
    done = _cli(tmp_path, **environment)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and words in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_a_postgresql_url_with_capitals_is_postgresql(postgres_ledger):
    shouted = postgres_ledger.replace("postgresql://", "PostgreSQL://", 1)
    assert shouted != postgres_ledger
    ledger = Ledger(shouted)
    assert ledger.postgresql
    ledger.ensure_schema()
    ledger.record_action("ann", "test", {})
    assert [action["who"] for action in Ledger(postgres_ledger).actions()] == ["ann"]


# -- generated: bad pipeline files, settings and flags ---------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, demo_file):
    """A warehouse, a ledger with a schema, and a pipeline folder, shared by every generated case:
    after every case their bytes are as before."""
    folder = tmp_path_factory.mktemp("strict")
    warehouse = folder / "warehouse.duckdb"
    shutil.copy(demo_file, warehouse)
    ledger = folder / "ledger.sqlite"
    Ledger(str(ledger)).ensure_schema()
    (folder / "jobs").mkdir()
    return folder, warehouse, ledger


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else "absent"


def _refused_by_the_cli(world, argv: list[str], environment: dict[str, str]) -> None:
    folder, warehouse, ledger = world
    wal = ledger.with_name(ledger.name + "-wal")
    files = lambda: sorted(p.name for p in folder.iterdir() if p.name != "cache")  # noqa: E731 - caches may come
    before = (_digest(warehouse), _digest(ledger), _digest(wal), files())
    environ = {
        "BACKFILL_CONFIG": os.devnull,
        "BACKFILL_WAREHOUSE": str(warehouse),
        "BACKFILL_LEDGER": str(ledger),
        "BACKFILL_RETRY_DELAYS": "0",
        **environment,
    }
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv, environ=environ)
    assert code == 2, (argv, environment, err.getvalue())
    assert err.getvalue().startswith("error: ") and err.getvalue().count("\n") == 1, err.getvalue()
    after = (_digest(warehouse), _digest(ledger), _digest(wal), files())
    assert after == before


RUN = ["run", "--dates", "2021-12-07", "--stages", "predictions"]

identifier = st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)
toml_values = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.booleans().map(lambda b: str(b).lower()),
    st.lists(st.integers(0, 9), max_size=3).map(str),
    st.just("{ a = 1 }"),
    st.just("1979-05-27"),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
)


@st.composite
def bad_pipeline_files(draw) -> bytes:
    """A good file with one thing wrong: a field of the wrong type, a bad argv, an unknown key..."""
    kind = draw(st.sampled_from(["gap", "wrong type", "unknown key", "argv", "bytes", "nesting", "table"]))
    text = GOOD
    if kind == "gap":
        (old, new), _ = PIPELINE_GAPS[draw(st.sampled_from(sorted(PIPELINE_GAPS)))]
        text = GOOD.replace(old, new, 1)
    elif kind == "wrong type":
        field = draw(
            st.sampled_from(["reference", "table", "upstream", "gate_min_upstream_pct", "processor"])
        )
        value = draw(toml_values)
        pattern = {
            "reference": ('reference = "played"', f"reference = {value}"),
            "table": ('table = "nba_predictions.player_prop_predictions"', f"table = {value}"),
            "upstream": ('upstream = "mlfs"', f"upstream = {value}"),
            "gate_min_upstream_pct": ("gate_min_upstream_pct = 90", f"gate_min_upstream_pct = {value}"),
            "processor": (f'processor = {{ kind = "command", argv = {ARGV} }}', f"processor = {value}"),
        }[field]
        if field == "gate_min_upstream_pct" and value.lstrip("-").replace(".", "", 1).isdigit():
            value = str(float(value) + 101.0) if float(value) >= 0 else value
            pattern = ("gate_min_upstream_pct = 90", f"gate_min_upstream_pct = {value}")
        text = GOOD.replace(*pattern)
    elif kind == "unknown key":
        where = draw(st.sampled_from(['reference = "played"', 'upstream = "mlfs"']))
        key = draw(identifier.filter(lambda k: k not in {"reference", "label", "columns", "upstream"}))
        text = GOOD.replace(where, f"{where}\nzz_{key} = 1", 1)
    elif kind == "argv":
        arg = draw(
            st.one_of(
                st.tuples(
                    st.text("abc", max_size=3), st.sampled_from(["{", "}"]), st.text("abc", max_size=3)
                ).map("".join),
                identifier.map(lambda name: "{" + name + "}").filter(
                    lambda a: a[1:-1] not in {"dates", "start", "end", "dates_file"}
                ),
            )
        )
        text = GOOD.replace('"{dates}"]', f'"{{dates}}", "{arg}"]', 1)
    elif kind == "bytes":
        junk = draw(st.binary(min_size=1, max_size=4).filter(lambda b: not _utf8(b)))
        return GOOD.encode().replace(b"played", b"pl" + junk, 1)
    elif kind == "nesting":
        depth = draw(st.integers(2000, 20000))
        text = GOOD.replace("bootstrap_min_history = 3", "x = " + "[" * depth + "]" * depth, 1)
    else:
        other = draw(
            st.sampled_from(["nba_analytics.player_game_summary", "nba_precompute.ml_feature_store"])
        )
        text = GOOD.replace('table = "nba_predictions.player_prop_predictions"', f'table = "{other}"', 1)
    return text.encode()


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=bad_pipeline_files())
def test_generated_bad_pipeline_files_exit_2_with_one_line_and_change_nothing(world, file):
    folder = world[0]
    path = folder / "bad-pipeline.toml"
    path.write_bytes(file)
    try:
        _refused_by_the_cli(world, ["--pipeline", str(path), *RUN], {})
    finally:
        path.unlink()


known_names = {
    "WAREHOUSE", "LEDGER", "CONFIG", "PIPELINE", "RETRY_DELAYS", "OPERATORS", "USER", "BATCH_SIZE", "OK_PCT",
}  # fmt: skip


@st.composite
def bad_settings(draw) -> dict[str, str]:
    """An environment with one bad setting: an unknown variable, a ledger or warehouse of another
    scheme, a value out of range or of the wrong type."""
    kind = draw(st.sampled_from(["unknown variable", "ledger scheme", "warehouse scheme", "value"]))
    if kind == "unknown variable":
        name = draw(st.text(string.ascii_uppercase + "_", min_size=1, max_size=16))
        from backfill.config import _PLAIN, OTHER_PREFIXES, OTHER_VARIABLES

        full = f"BACKFILL_{name}"
        if full in OTHER_VARIABLES or name.lower() in _PLAIN or full.startswith(OTHER_PREFIXES):
            full += "_X"
        return {full: draw(st.text(string.ascii_letters, max_size=5))}
    if kind in ("ledger scheme", "warehouse scheme"):
        scheme = draw(
            st.text(string.ascii_letters + "+", min_size=1, max_size=10).filter(
                lambda s: (
                    s.lower()
                    not in {"postgresql", "postgres", "postgresql+psycopg", "sqlite", "duckdb", "bigquery"}
                )
            )
        )
        name = "BACKFILL_LEDGER" if kind == "ledger scheme" else "BACKFILL_WAREHOUSE"
        return {name: f"{scheme}://user@host/db"}
    name, value = draw(
        st.sampled_from(
            [
                ("BACKFILL_RETRY_DELAYS", st.sampled_from(["1e9", "-1", "nan", "x", "inf", "3601"])),
                ("BACKFILL_ALERT_RETRY_DELAYS", st.sampled_from(["1e9", "301", "-5", "nan"])),
                ("BACKFILL_MAX_ATTEMPTS", st.integers(-100, 0).map(str)),
                ("BACKFILL_OK_PCT", st.sampled_from(["101", "-1", "abc", "nan"])),
                ("BACKFILL_BATCH_SIZE", st.integers(-100, 0).map(str)),
                ("BACKFILL_OPERATOR_CLAIM", identifier.filter(lambda c: c not in {"email", "sub"})),
            ]
        )
    )
    return {name: draw(value)}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(environment=bad_settings())
def test_generated_bad_settings_exit_2_with_one_line_and_change_nothing(world, environment):
    _refused_by_the_cli(world, RUN, environment)


@st.composite
def bad_flags(draw) -> list[str]:
    """A run's command line with one bad flag."""
    flag, value = draw(
        st.sampled_from(
            [
                ("--dates", st.sampled_from(["2021-13-01", "yesterday", "2021-12-07,x", "2999-01-01"])),
                ("--retry-delays", st.sampled_from(["", ",", "1e9", "-1", "x", "nan"])),
                ("--max-attempts", st.sampled_from(["0", "-3", "x", "1.5"])),
                ("--batch-size", st.sampled_from(["0", "-1", "x"])),
                ("--min-upstream-coverage", st.sampled_from(["101", "-1", "x", "nan"])),
                ("--stages", st.sampled_from(["features", "played", ",", "mlfs,features"])),
                (
                    "--warehouse",
                    st.text(string.ascii_letters, min_size=1, max_size=8).map(lambda s: f"{s}x://h/db"),
                ),
            ]
        )
    )
    text = draw(value)
    base = ["run", "--dates", "2021-12-07"] if flag != "--dates" else ["run"]
    return [*base, flag, text]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=bad_flags())
def test_generated_bad_flags_exit_2_with_one_line_and_change_nothing(world, argv):
    _refused_by_the_cli(world, argv, {})


def test_an_unwritable_output_is_refused_before_any_work(tmp_path):
    # /proc takes no new files, even from root; the warehouse named does not exist: the output is
    # the first thing looked at.
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(
            ["gaps", "--warehouse", str(tmp_path / "absent.duckdb"), "--output", "/proc/report.csv"],
            environ={"BACKFILL_CONFIG": os.devnull, "BACKFILL_LEDGER": str(tmp_path / "ledger.sqlite")},
        )
    assert code == 2
    assert (
        err.getvalue().startswith("error: cannot write to directory '/proc'")
        and err.getvalue().count("\n") == 1
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_a_postgresql_ledger_that_does_not_answer_for_seconds_is_waited_for(postgres_ledger, monkeypatch):
    """Issue 21, 6: an outage of seconds is a wait. The client refuses twice, as a restarting
    server does, then connects."""
    import psycopg

    from backfill.ledger.database import engine_for

    real_connect, refused = psycopg.connect, []

    def connect(*args, **kwargs):
        if len(refused) < 2:
            refused.append(time.monotonic())
            raise psycopg.OperationalError("connection refused: the server is restarting")
        return real_connect(*args, **kwargs)

    ledger = Ledger(postgres_ledger)
    ledger.ensure_schema()  # the schema made while the server answers
    engine_for(postgres_ledger).dispose()  # no pooled connection: the next one is asked of the client
    monkeypatch.setattr(psycopg, "connect", connect)
    ledger.patient().record_action("ann", "outage test", {})
    assert len(refused) == 2
    assert [action["action"] for action in ledger.actions()] == ["outage test"]


@pytest.mark.postgres
def test_a_postgresql_ledger_down_for_good_is_reported_unavailable(postgres_ledger, monkeypatch):
    import psycopg

    from backfill.ledger.database import LedgerUnavailable, engine_for

    attempts = []

    def connect(*args, **kwargs):
        attempts.append(1)
        raise psycopg.OperationalError("connection refused")

    ledger = Ledger(postgres_ledger)
    ledger.ensure_schema()
    engine_for(postgres_ledger).dispose()
    monkeypatch.setattr(psycopg, "connect", connect)
    monkeypatch.setattr("backfill.ledger.database.CONNECT_RETRY_DELAYS", (0.0, 0.0))
    with pytest.raises(LedgerUnavailable, match="cannot reach the run ledger"):
        ledger.patient().record_action("ann", "x", {})
    assert len(attempts) == 3  # the first try and one after each delay
    attempts.clear()
    with pytest.raises(LedgerUnavailable):  # a page or a one-off command: said at once
        ledger.record_action("ann", "x", {})
    assert len(attempts) == 1
