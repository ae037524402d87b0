"""SQL is written once, in GoogleSQL; this module renders table names and translates dialects.

Templates name tables by stage name (``{played}``, ``{mlfs}``; the demo's tables also by table name and
short alias) and take values only as
``@parameters``. Rendering substitutes validated, quoted table references; translation to another
dialect goes through sqlglot and is cached, so each distinct statement is translated once.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import rename_func
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import Tokenizer, TokenType

SOURCE_DIALECT = "bigquery"


class EmbeddedDuckDB(DuckDB):
    """sqlglot's DuckDB dialect, filling the one gap this project meets: DuckDB has no
    FARM_FINGERPRINT, and a change fingerprint only needs *a* 64-bit hash, so HASH serves."""

    class Generator(DuckDB.Generator):  # type: ignore[valid-type,misc]  # sqlglot declares it as a variable
        TRANSFORMS = {**DuckDB.Generator.TRANSFORMS, exp.FarmFingerprint: rename_func("HASH")}


DIALECTS = {"duckdb": EmbeddedDuckDB}
"""sqlglot dialect used for each target dialect name, where it is not sqlglot's own."""


def render(template: str, table_refs: Mapping[str, str]) -> str:
    """Substitute quoted table references for the ``{alias}`` placeholders of a template."""
    return template.format_map(dict(table_refs))


@lru_cache(maxsize=512)
def translate(googlesql: str, dialect: str) -> tuple[str, ...]:
    """GoogleSQL to ``dialect``, one string per statement (a script may hold several)."""
    if dialect == SOURCE_DIALECT:
        return (googlesql,)
    return tuple(sqlglot.transpile(googlesql, read=SOURCE_DIALECT, write=DIALECTS.get(dialect, dialect)))


@lru_cache(maxsize=512)
def split_statements(script: str) -> tuple[str, ...]:
    """The statements of a GoogleSQL script as written, cut at its top-level semicolons.

    Semicolons inside strings and comments do not cut (the script is tokenized); the scripts this
    project writes have no BEGIN ... END blocks, whose inner semicolons would.
    """
    tokens = Tokenizer(dialect=SOURCE_DIALECT).tokenize(script)
    cuts = [token.start for token in tokens if token.token_type == TokenType.SEMICOLON]
    pieces, begin = [], 0
    for cut in [*cuts, len(script)]:
        pieces.append(script[begin:cut].strip())
        begin = cut + 1
    return tuple(piece for piece in pieces if piece)
