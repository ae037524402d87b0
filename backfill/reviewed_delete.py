"""Delete exactly what the review showed: a stale-row deletion confirms the counts it was shown.

Between the review (the counts an operator looked at) and the click, a backfill or another
operator may change the stale rows of the range. The deletion counts again and deletes only when
the counts are the same as the reviewed ones; otherwise it deletes nothing and returns the new
counts to review. The console's Gaps page and any CLI confirmation use this one rule.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd

from backfill.config import Settings
from backfill.errors import BackfillError
from backfill.stale import stale_counts
from backfill.warehouse import Warehouse

CountKey = tuple[tuple[str, str, str, int], ...]


class ReviewOutdated(BackfillError):
    """The stale rows changed since the review; nothing was deleted. ``counts`` are the new ones."""

    def __init__(self, counts: pd.DataFrame):
        self.counts = counts
        super().__init__(
            "the stale rows of this range changed since the review (someone else deleted or a backfill "
            "ran); nothing was deleted. Check the new counts"
        )


def count_key(stale: pd.DataFrame) -> CountKey:
    """The counts as plain, comparable values: what a confirmation promised is what is deleted."""
    return tuple(
        (str(day), table, category, int(rows))
        for day, table, category, rows in stale[["game_date", "table_name", "category", "rows"]].itertuples(
            index=False
        )
    )


def delete_as_reviewed(
    settings: Settings, warehouse: Warehouse, start: dt.date, end: dt.date, reviewed: pd.DataFrame, who: str
) -> pd.DataFrame:
    """Delete the range's stale rows if their counts are still ``reviewed``; else ReviewOutdated."""
    from backfill.launch import delete_stale_rows

    now = stale_counts(warehouse, settings, start, end)
    if count_key(now) != count_key(reviewed):
        raise ReviewOutdated(now)
    return delete_stale_rows(settings, start, end, who, warehouse=warehouse)
