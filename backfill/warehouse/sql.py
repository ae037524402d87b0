"""SQL is written once, in GoogleSQL; this module renders table names and translates dialects.

Templates name tables by stage name (``{played}``, ``{mlfs}``; the demo's tables also by table name and
short alias) and take values only as
``@parameters``. Rendering substitutes validated, quoted table references; translation to another
dialect goes through sqlglot and is cached, so each distinct statement is translated once: in memory
for the process, and on disk (``Settings.cache_path("sql")``) for the next process, keyed by the
statement, the dialect, sqlglot's version and this module's own text (its dialect tweaks). sqlglot
itself is imported only when a statement is not in either cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from backfill import cache_files

SOURCE_DIALECT = "bigquery"


@lru_cache(maxsize=1)
def _dialects() -> dict[str, Any]:
    """sqlglot dialect used for each target dialect name, where it is not sqlglot's own."""
    from sqlglot import exp
    from sqlglot.dialects.dialect import rename_func
    from sqlglot.dialects.duckdb import DuckDB

    def only_filters(node: exp.Expression) -> bool:
        """Whether a condition's value only keeps or drops rows: it is one of the ANDed terms of a
        WHERE, QUALIFY or HAVING (no NOT, OR or SELECT sees whether it was NULL or FALSE)."""
        parent = node.parent
        while isinstance(parent, (exp.And, exp.Paren)):
            parent = parent.parent
        return isinstance(parent, (exp.Where, exp.Qualify, exp.Having))

    class EmbeddedDuckDB(DuckDB):
        """sqlglot's DuckDB dialect, filling two gaps this project meets:

        - DuckDB has no FARM_FINGERPRINT, and a change fingerprint only needs *a* 64-bit hash, so HASH serves;
        - ``x IN UNNEST(@list)`` as a filter becomes ``ARRAY_CONTAINS(@list, x)`` (see ``in_sql``).
        """

        class Generator(DuckDB.Generator):  # type: ignore[valid-type,misc]  # sqlglot declares it as a variable
            TRANSFORMS = {**DuckDB.Generator.TRANSFORMS, exp.FarmFingerprint: rename_func("HASH")}

            def in_sql(self, expression: exp.In) -> str:
                # sqlglot keeps BigQuery's NULL answers of IN UNNEST with a CASE that DuckDB cannot use
                # as a scan filter: tested row by row against a season of dates, it cost more than the
                # rest of a batch's statements together (issue 13). Where the test only keeps or drops
                # rows (ANDed into a WHERE, QUALIFY or HAVING), NULL and FALSE drop alike, so the plain
                # ARRAY_CONTAINS answers the same.
                unnest = expression.args.get("unnest")
                if unnest and len(unnest.expressions) == 1 and only_filters(expression):
                    return self.func("ARRAY_CONTAINS", unnest.expressions[0], expression.this)
                return super().in_sql(expression)

    return {"duckdb": EmbeddedDuckDB}


def render(template: str, table_refs: Mapping[str, str]) -> str:
    """Substitute quoted table references for the ``{alias}`` placeholders of a template."""
    return template.format_map(dict(table_refs))


TRANSLATIONS_IN_MEMORY = 512
"""Translations a process keeps in memory (more distinct statements than this start it afresh)."""

_translations: dict[tuple[str, str], tuple[str, ...]] = {}
_translations_lock = threading.Lock()


def translate(googlesql: str, dialect: str, cache: Path | None = None) -> tuple[str, ...]:
    """GoogleSQL to ``dialect``, one string per statement (a script may hold several): from this
    process's memory, else from ``cache`` (the folder of translations kept between processes; None:
    none), else from sqlglot (then kept in both)."""
    if dialect == SOURCE_DIALECT:
        return (googlesql,)
    key = (googlesql, dialect)
    found = _translations.get(key)
    if found is not None:
        return found
    path = None if cache is None else cache / f"{_translation_key(googlesql, dialect)}.json"
    found = None if path is None else _read_translation(path, googlesql, dialect)
    if found is None:
        import sqlglot

        found = tuple(
            sqlglot.transpile(googlesql, read=SOURCE_DIALECT, write=_dialects().get(dialect, dialect))
        )
        if path is not None:
            entry = {"source": googlesql, "dialect": dialect, "statements": list(found)}
            with contextlib.suppress(OSError):  # a read-only or full disk: the next process translates again
                cache_files.write(path, json.dumps(entry).encode())
    with _translations_lock:
        if len(_translations) >= TRANSLATIONS_IN_MEMORY:
            _translations.clear()
        _translations[key] = found
    return found


def forget_translations() -> None:
    """Drop the translations this process keeps in memory (a fresh process starts without them)."""
    with _translations_lock:
        _translations.clear()


def _read_translation(path: Path, googlesql: str, dialect: str) -> tuple[str, ...] | None:
    payload = cache_files.read(path)
    if payload is None:
        return None
    try:
        entry = json.loads(payload)
        statements = entry["statements"]
        if entry["source"] != googlesql or entry["dialect"] != dialect:
            return None
        if not isinstance(statements, list) or not all(isinstance(s, str) for s in statements):
            return None
    except (ValueError, TypeError, KeyError):
        return None
    return tuple(statements)


def _translation_key(googlesql: str, dialect: str) -> str:
    return hashlib.sha256(json.dumps([_translator_version(), dialect, googlesql]).encode()).hexdigest()


@lru_cache(maxsize=1)
def _translator_version() -> str:
    """sqlglot's version and a hash of this module (whose dialect tweaks change translations),
    found without importing sqlglot."""
    from importlib.metadata import version

    return f"sqlglot {version('sqlglot')}; {hashlib.sha256(Path(__file__).read_bytes()).hexdigest()}"


@lru_cache(maxsize=512)
def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a GoogleSQL script as written, cut at its top-level semicolons.

    Semicolons inside strings and comments do not cut (the script is tokenized); the scripts this
    project writes have no BEGIN ... END blocks, whose inner semicolons would.
    """
    from sqlglot.tokens import Tokenizer, TokenType

    tokens = Tokenizer(dialect=SOURCE_DIALECT).tokenize(script)
    cuts = [token.start for token in tokens if token.token_type == TokenType.SEMICOLON]
    pieces, begin = [], 0
    for cut in [*cuts, len(script)]:
        pieces.append(script[begin:cut].strip())
        begin = cut + 1
    return tuple(piece for piece in pieces if piece)
