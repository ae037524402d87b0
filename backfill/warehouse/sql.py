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
    """sqlglot's DuckDB dialect, filling two gaps this project meets:

    - DuckDB has no FARM_FINGERPRINT, and a change fingerprint only needs *a* 64-bit hash, so HASH serves;
    - ``x IN UNNEST(@list)`` as a filter becomes ``ARRAY_CONTAINS(@list, x)`` (see :meth:`in_sql`).
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
            if unnest and len(unnest.expressions) == 1 and _only_filters(expression):
                return self.func("ARRAY_CONTAINS", unnest.expressions[0], expression.this)
            return super().in_sql(expression)


def _only_filters(node: exp.Expression) -> bool:
    """Whether a condition's value only keeps or drops rows: it is one of the ANDed terms of a
    WHERE, QUALIFY or HAVING (no NOT, OR or SELECT sees whether it was NULL or FALSE)."""
    parent = node.parent
    while isinstance(parent, (exp.And, exp.Paren)):
        parent = parent.parent
    return isinstance(parent, (exp.Where, exp.Qualify, exp.Having))


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
