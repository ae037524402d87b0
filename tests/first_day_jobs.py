"""Python-processor jobs for the first-day tests: what a team's MERGE leaves behind, made on purpose.

The job writes through the console's own connection (``context.warehouse``) with a parameter of its
own name, so a test's fault at the adapter boundary can tell the job's statements from the console's.
"""

from __future__ import annotations

import datetime as dt


def leave_a_duplicate(dates: list[dt.date], context) -> dict:
    """Append a second copy of each date's first prediction (a MERGE that appended instead of
    matching): the date stays complete, but its stage now holds a duplicate."""
    for day in dates:
        context.warehouse.execute(
            "INSERT INTO {predictions} SELECT * FROM {predictions} WHERE game_date = @job_date "
            "ORDER BY player_lookup, system_id LIMIT 1",
            {"job_date": day},
        )
    return {}
