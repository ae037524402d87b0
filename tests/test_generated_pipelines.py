"""Generated pipelines on generated warehouses (Hypothesis): the first-day invariants hold for any
team's file, not only for the ones we thought of.

A strategy builds a pipeline file and the DuckDB tables it describes: renamed date, player, version
and timestamp columns, extra NULLABLE and REQUIRED columns, 2 to 5 stages in a tree, keys with a
system column, gates and bootstrap rules, and MERGE jobs from a small template
(tests/generated_jobs.py) that may leave a duplicate or skip bootstrap players; the tables may hold
orphans from before. The invariants are checked with SQL written here, never with the console's:

- a date called done is complete (every non-bootstrap player has a row) and clean (no duplicate,
  orphan, old version, outdated row or NULL in a required column);
- coverage equals an independent count;
- a refused command (a column the file names is missing) writes nothing and says so in one line;
- every read over any range ends with exit 0, or 2 and one line, never an unexpected error.

``make test-fast`` runs a few examples of each (HYPOTHESIS_PROFILE=fast); ``make test`` runs 222
in all. A failure shrinks to the smallest pipeline that still fails; to rerun it,
see the README's test section.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backfill.cli.main import main
from backfill.ledger import Ledger
from backfill.pipeline import parse_pipeline
from tests.generated_jobs import REQUIRED_FILL, SYSTEM_COLUMN, SYSTEMS, command_script
from tests.team_warehouse import checksums

SEASON_START = dt.date(2021, 10, 19)
TODAY = dt.date(2026, 12, 8)
JOBS = {
    "merge": "tests.generated_jobs:merge",
    "duplicate": "tests.generated_jobs:merge_leaving_a_duplicate",
    "skip_bootstrap": "tests.generated_jobs:merge_without_bootstrap_players",
}

names = st.from_regex(r"[a-z]{1,5}", fullmatch=True)


@dataclass
class Reference:
    name: str
    dataset: str
    table: str
    date_column: str
    player_column: str
    written_at: str


@dataclass
class StageSpec:
    name: str
    dataset: str
    table: str
    upstream: str
    date_column: str
    player_column: str
    written_at: str
    version_column: str | None
    current_version: str | None
    upstream_time_column: str | None
    with_system: bool
    nullable: list[str]
    required: list[str]
    gate: float | None
    bootstrap_min: int
    job: str
    clean_stale: bool
    kind: str = "python"
    """``python`` (the template in-process) or ``command`` (the template as a script of its own)."""


@dataclass
class Team:
    reference: Reference
    stages: list[StageSpec]
    games: dict[dt.date, list[str]]
    orphans: list[tuple[str, dt.date]] = field(default_factory=list)
    """(stage, date) with a row for a player who did not play: left by an earlier MERGE."""

    @property
    def dates(self) -> list[dt.date]:
        return sorted(self.games)

    def stage(self, name: str) -> StageSpec | Reference:
        return (
            self.reference if name == self.reference.name else next(s for s in self.stages if s.name == name)
        )


def _distinct(draw, prefix: str, used: set[str]) -> str:
    name = prefix + draw(names)
    while name in used:
        name += "x"
    used.add(name)
    return name


@st.composite
def teams(draw, max_stages: int = 4, kinds: tuple[str, ...] = ("python",)) -> Team:
    """A team's pipeline (reference plus 1 to ``max_stages`` stages, whose jobs are of ``kinds``) and
    the data of its tables."""
    stage_names: set[str] = set()
    tables: set[str] = set()
    reference = Reference(
        name=_distinct(draw, "s_", stage_names),
        dataset="d_ref",
        table=_distinct(draw, "t_", tables),
        date_column=draw(st.sampled_from(["game_date", "c_day", "c_date"])),
        player_column=draw(st.sampled_from(["player_lookup", "c_who", "c_player"])),
        written_at=draw(st.sampled_from(["processed_at", "c_loaded_at"])),
    )
    stages: list[StageSpec] = []
    for _ in range(draw(st.integers(1, max_stages))):
        columns: set[str] = set()
        date_column = draw(st.sampled_from(["game_date", "c_day"]))
        player_column = draw(st.sampled_from(["player_lookup", "c_who"]))
        columns |= {date_column, player_column, SYSTEM_COLUMN}
        versioned = draw(st.booleans())
        upstream = draw(st.sampled_from([reference.name, *(s.name for s in stages)]))
        stages.append(
            StageSpec(
                name=_distinct(draw, "s_", stage_names),
                dataset=draw(st.sampled_from(["d_lab", "d_ml"])),
                table=_distinct(draw, "t_", tables),
                upstream=upstream,
                date_column=date_column,
                player_column=player_column,
                written_at=_distinct(draw, "w_", columns) if draw(st.booleans()) else "processed_at",
                version_column=_distinct(draw, "v_", columns) if versioned else None,
                current_version=draw(st.sampled_from(["v1", "model_7"])) if versioned else None,
                upstream_time_column=_distinct(draw, "u_", columns) if draw(st.booleans()) else None,
                with_system=draw(st.booleans()),
                nullable=[_distinct(draw, "n_", columns) for _ in range(draw(st.integers(0, 2)))],
                required=[_distinct(draw, "r_", columns) for _ in range(draw(st.integers(0, 1)))],
                gate=draw(st.one_of(st.none(), st.sampled_from([50.0, 90.0])))
                if upstream != reference.name
                else None,
                bootstrap_min=draw(st.integers(0, 2)),
                job=draw(st.sampled_from(sorted(JOBS))),
                clean_stale=draw(st.booleans()),
                kind=draw(st.sampled_from(kinds)),
            )
        )
    players = [f"p{n}" for n in range(draw(st.integers(2, 5)))]
    offsets = draw(st.lists(st.integers(0, 60), min_size=1, max_size=6, unique=True))
    games = {
        SEASON_START + dt.timedelta(days=offset): draw(
            st.lists(st.sampled_from(players), min_size=1, max_size=len(players), unique=True)
        )
        for offset in offsets
    }
    team = Team(reference, stages, games)
    team.orphans = draw(
        st.lists(
            st.tuples(st.sampled_from([s.name for s in stages]), st.sampled_from(sorted(games))), max_size=2
        )
    )
    return team


def _quote(value: str) -> str:
    return json.dumps(value)


def pipeline_text(team: Team) -> str:
    ref = team.reference
    lines = [
        "[pipeline]",
        f"reference = {_quote(ref.name)}",
        "",
        f"[stages.{ref.name}]",
        f"table = {_quote(f'{ref.dataset}.{ref.table}')}",
        f"date_column = {_quote(ref.date_column)}",
        f"player_column = {_quote(ref.player_column)}",
        f"written_at_column = {_quote(ref.written_at)}",
    ]
    for stage in team.stages:
        lines += [
            "",
            f"[stages.{stage.name}]",
            f"table = {_quote(f'{stage.dataset}.{stage.table}')}",
            f"upstream = {_quote(stage.upstream)}",
            f"date_column = {_quote(stage.date_column)}",
            f"player_column = {_quote(stage.player_column)}",
            f"written_at_column = {_quote(stage.written_at)}",
            f"bootstrap_min_history = {stage.bootstrap_min}",
        ]
        if stage.version_column:
            lines += [
                f"version_column = {_quote(stage.version_column)}",
                f"current_version = {_quote(stage.current_version)}",
            ]
        if stage.upstream_time_column:
            lines.append(f"upstream_time_column = {_quote(stage.upstream_time_column)}")
        if stage.with_system:
            key = [stage.date_column, stage.player_column, SYSTEM_COLUMN]
            lines.append(f"duplicate_key = {json.dumps(key)}")
        if stage.required:
            lines.append(f"required_columns = {json.dumps(stage.required)}")
        if stage.gate is not None:
            lines.append(f"gate_min_upstream_pct = {stage.gate}")
        lines.append(
            f'processor = {{ kind = "python", function = {_quote(JOBS[stage.job])}, '
            f"clean_stale = {'true' if stage.clean_stale else 'false'} }}"
        )
    return "\n".join(lines) + "\n"


def build_warehouse(team: Team, path: Path) -> None:
    """The team's tables, made and filled with plain DuckDB."""
    ref = team.reference
    loaded = dt.datetime(2021, 12, 31, 6, 0)
    with duckdb.connect(str(path)) as connection:
        for dataset in {ref.dataset, *(s.dataset for s in team.stages)}:
            connection.execute(f"CREATE SCHEMA {dataset}")
        connection.execute(
            f"CREATE TABLE {ref.dataset}.{ref.table} ({ref.date_column} DATE NOT NULL, "
            f"{ref.player_column} VARCHAR NOT NULL, {ref.written_at} TIMESTAMP)"
        )
        for day, players in team.games.items():
            for player in players:
                connection.execute(
                    f"INSERT INTO {ref.dataset}.{ref.table} VALUES ($day, $player, $at)",
                    {"day": day, "player": player, "at": loaded},
                )
        for stage in team.stages:
            columns = [f"{stage.date_column} DATE", f"{stage.player_column} VARCHAR"]
            if stage.with_system:
                columns.append(f"{SYSTEM_COLUMN} VARCHAR")
            if stage.version_column:
                columns.append(f"{stage.version_column} VARCHAR")
            if stage.upstream_time_column:
                columns.append(f"{stage.upstream_time_column} TIMESTAMP")
            columns.append(f"{stage.written_at} TIMESTAMP")
            columns += [f"{name} VARCHAR" for name in stage.nullable]
            columns += [f"{name} VARCHAR NOT NULL" for name in stage.required]
            connection.execute(f"CREATE TABLE {stage.dataset}.{stage.table} ({', '.join(columns)})")
        for name, day in team.orphans:
            stage = team.stage(name)
            assert isinstance(stage, StageSpec)
            values = {stage.date_column: day, stage.player_column: "ghost", stage.written_at: loaded}
            if stage.with_system:
                values[SYSTEM_COLUMN] = SYSTEMS[0]
            if stage.version_column:
                values[stage.version_column] = stage.current_version
            values |= {column: REQUIRED_FILL for column in stage.required}
            names_ = ", ".join(values)
            marks = ", ".join(f"$v{n}" for n in range(len(values)))
            connection.execute(
                f"INSERT INTO {stage.dataset}.{stage.table} ({names_}) VALUES ({marks})",
                {f"v{n}": value for n, value in enumerate(values.values())},
            )


@contextlib.contextmanager
def team_folder(team: Team):
    """A folder with the team's warehouse, pipeline file and ledger; yields (folder, environment)."""
    with tempfile.TemporaryDirectory(prefix="team-") as name:
        folder = Path(name)
        build_warehouse(team, folder / "warehouse.duckdb")
        (folder / "pipeline.toml").write_text(pipeline_text(team))
        commands = [stage for stage in team.stages if stage.kind == "command"]
        if commands:
            (folder / "jobs").mkdir()
            pipeline = parse_pipeline(pipeline_text(team))
            for stage in commands:
                (folder / "jobs" / f"{stage.name}.py").write_text(
                    command_script(pipeline, stage.name, stage.job)
                )
        yield (
            folder,
            {
                "BACKFILL_CONFIG": os.devnull,
                "BACKFILL_WAREHOUSE": str(folder / "warehouse.duckdb"),
                "BACKFILL_LEDGER": str(folder / "ledger.sqlite"),
                "BACKFILL_PIPELINE": str(folder / "pipeline.toml"),
                "BACKFILL_RETRY_DELAYS": "0,0,0",
                "BACKFILL_CACHE_DIR": "off",
            },
        )


def cli(environ: dict[str, str], *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv), environ=environ, today=lambda: TODAY)
    return code, out.getvalue(), err.getvalue()


def query(folder: Path, sql: str, params: dict | None = None) -> list[tuple]:
    # The default configuration, as the console opens the file: one process may then share it.
    with duckdb.connect(str(folder / "warehouse.duckdb")) as connection:
        return connection.execute(sql, params or {}).fetchall()


# -- independent counts ---------------------------------------------------------------------------


def history(team: Team, player: str, day: dt.date) -> int:
    """Earlier games of a player this season (the season starts on 1 August), counted here."""
    season = dt.date(day.year - (day.month < 8), 8, 1)
    return sum(1 for other, players in team.games.items() if season <= other < day and player in players)


def rows_of(folder: Path, stage: StageSpec, day: dt.date) -> list[tuple]:
    """(player, system, version, upstream time, written at, *required) of a stage's rows on a date."""
    system = SYSTEM_COLUMN if stage.with_system else "NULL"
    version = stage.version_column or "NULL"
    upstream_time = stage.upstream_time_column or "NULL"
    required = "".join(f", {c}" for c in stage.required)
    return query(
        folder,
        f"SELECT {stage.player_column}, {system}, {version}, {upstream_time}, {stage.written_at}{required} "
        f"FROM {stage.dataset}.{stage.table} WHERE {stage.date_column} = $day",
        {"day": day},
    )


def upstream_written(folder: Path, team: Team, stage: StageSpec, day: dt.date) -> dict[str, dt.datetime]:
    upstream = team.stage(stage.upstream)
    written = upstream.written_at
    return dict(
        query(
            folder,
            f"SELECT {upstream.player_column}, MAX({written}) FROM {upstream.dataset}.{upstream.table} "
            f"WHERE {upstream.date_column} = $day GROUP BY 1",
            {"day": day},
        )
    )


def complete_and_clean(folder: Path, team: Team, stage: StageSpec, day: dt.date) -> list[str]:
    """What is wrong with a stage's rows on a date, by SQL of its own: missing players, duplicates,
    orphans, old versions, outdated rows and NULLs in required columns (an empty list: complete and clean)."""
    rows = rows_of(folder, stage, day)
    played = set(team.games.get(day, []))
    problems = []
    have = {row[0] for row in rows}
    for player in played:
        if history(team, player, day) >= stage.bootstrap_min and player not in have:
            problems.append(f"missing {player}")
    keys = [(row[0], row[1]) for row in rows]
    if len(keys) != len(set(keys)):
        problems.append("duplicate")
    if have - played:
        problems.append(f"orphan {sorted(have - played)}")
    if stage.version_column and any(row[2] != stage.current_version for row in rows):
        problems.append("old version")
    if stage.upstream_time_column:
        written = upstream_written(folder, team, stage, day)
        if any(row[3] is not None and row[0] in written and row[3] < written[row[0]] for row in rows):
            problems.append("outdated")
    if any(value is None for row in rows for value in row[5:]):
        problems.append("null in a required column")
    return problems


# -- the properties -------------------------------------------------------------------------------

FAST = os.environ.get("HYPOTHESIS_PROFILE") == "fast"
"""``make test-fast`` sets it: a few examples each, so the fast suite stays fast."""
DONE_EXAMPLES, REFUSAL_EXAMPLES, READ_EXAMPLES, COMMAND_EXAMPLES = (8, 8, 4, 2) if FAST else (60, 100, 50, 12)
COMMON = {
    "deadline": None,
    "print_blob": True,  # a failure prints the @reproduce_failure line that replays it
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
}


@settings(max_examples=DONE_EXAMPLES, **COMMON)
@given(team=teams())
def test_a_date_called_done_is_complete_and_clean_and_coverage_is_an_independent_count(team):
    with team_folder(team) as (folder, environ):
        start, end = team.dates[0], team.dates[-1]
        code, out, err = cli(environ, "run", "--start", str(start), "--end", str(end))
        assert code in (0, 1), out + err
        ledger = Ledger(environ["BACKFILL_LEDGER"])
        (run,) = ledger.list_runs()
        items = ledger.items(run.run_id)
        assert {item["status"] for item in items} <= {"done", "failed", "blocked", "skipped"}
        for item in items:
            if item["status"] == "done":
                stage = team.stage(item["stage"])
                assert isinstance(stage, StageSpec)
                day = dt.date.fromisoformat(item["game_date"])
                assert complete_and_clean(folder, team, stage, day) == [], (item, pipeline_text(team))
        # Coverage, date by date, against a count of the reference and of each stage's table.
        code, out, err = cli(
            environ, "coverage", "--start", str(start), "--end", str(end), "--by", "date", "--format", "json"
        )
        assert code == 0, err
        for row in json.loads(out):
            day = dt.date.fromisoformat(row["period"])
            stage = team.stage(row["stage"])
            assert isinstance(stage, StageSpec)
            played = set(team.games.get(day, []))
            have = {found[0] for found in rows_of(folder, stage, day)}
            assert (row["players_total"], row["players_covered"]) == (len(played), len(played & have)), row


@settings(max_examples=COMMAND_EXAMPLES, **COMMON)
@given(team=teams(max_stages=2, kinds=("command",)))
def test_command_jobs_from_the_template_are_done_only_when_complete_and_clean(team):
    with team_folder(team) as (folder, environ):
        code, out, err = cli(environ, "run", "--start", str(team.dates[0]), "--end", str(team.dates[-1]))
        assert code in (0, 1), out + err
        ledger = Ledger(environ["BACKFILL_LEDGER"])
        (run,) = ledger.list_runs()
        for item in ledger.items(run.run_id):
            assert item["status"] in ("done", "failed", "blocked", "skipped"), item
            if item["status"] == "done":
                stage = team.stage(item["stage"])
                assert isinstance(stage, StageSpec)
                day = dt.date.fromisoformat(item["game_date"])
                assert complete_and_clean(folder, team, stage, day) == [], (item, pipeline_text(team))


def _needed_columns(team: Team) -> list[tuple[str, str]]:
    """(stage, column) pairs the pipeline file names or implies, whose absence must stop a write."""
    needed = [
        (team.reference.name, team.reference.date_column),
        (team.reference.name, team.reference.player_column),
    ]
    for stage in team.stages:
        needed += [
            (stage.name, stage.date_column),
            (stage.name, stage.player_column),
            (stage.name, stage.written_at),
        ]
        if stage.version_column:
            needed.append((stage.name, stage.version_column))
        if stage.upstream_time_column:
            needed.append((stage.name, stage.upstream_time_column))
            upstream = team.stage(stage.upstream)
            needed.append((upstream.name, upstream.written_at))
        if stage.with_system:
            needed.append((stage.name, SYSTEM_COLUMN))
        needed += [(stage.name, column) for column in stage.required]
    return sorted(set(needed))


@settings(max_examples=REFUSAL_EXAMPLES, **COMMON)
@given(team=teams(), data=st.data())
def test_a_column_the_file_names_but_the_table_lacks_refuses_every_write_and_writes_nothing(team, data):
    stage_name, column = data.draw(st.sampled_from(_needed_columns(team)), label="missing column")
    stage = team.stage(stage_name)
    with team_folder(team) as (folder, environ):
        query(folder, f"ALTER TABLE {stage.dataset}.{stage.table} DROP COLUMN {column}")
        tables = tuple(f"{s.dataset}.{s.table}" for s in [team.reference, *team.stages])
        before = checksums(folder / "warehouse.duckdb", tables, read_only=False)
        start, end = str(team.dates[0]), str(team.dates[-1])
        write = data.draw(
            st.sampled_from(
                [
                    ("run", "--start", start, "--end", end),
                    ("run", "--start", start, "--end", end, "--dry-run"),
                    ("stale", "--start", start, "--end", end, "--delete", "--yes"),
                ]
            ),
            label="command",
        )
        code, out, err = cli(environ, *write)
        assert code == 2, out + err
        (line,) = err.strip().splitlines()
        assert line.startswith("error: ") and f"stage {stage_name}" in line and column in line, line
        assert checksums(folder / "warehouse.duckdb", tables, read_only=False) == before
        assert (
            not Path(environ["BACKFILL_LEDGER"]).exists()
            or Ledger(environ["BACKFILL_LEDGER"]).list_runs() == []
        )


ranges = st.tuples(
    st.dates(dt.date(2019, 1, 1), dt.date(2027, 12, 31)), st.dates(dt.date(2019, 1, 1), dt.date(2027, 12, 31))
)


@settings(max_examples=READ_EXAMPLES, **COMMON)
@given(team=teams(max_stages=2), span=ranges, read=st.sampled_from(["coverage", "gaps", "stale", "check"]))
def test_every_read_over_any_range_answers_cleanly(team, span, read):
    with team_folder(team) as (_, environ):
        code, out, err = cli(environ, read, "--start", str(span[0]), "--end", str(span[1]))
        if code == 2:
            (line,) = err.strip().splitlines()
            assert line.startswith("error: "), err
        else:
            # check exits 1 when it finds problems: its answer, not an error.
            assert code == 0 or (read == "check" and code == 1), out + err
            assert "error" not in err, err
            assert out.strip()
