"""A coverage snapshot that refreshes only the dates whose rows changed.

Measuring coverage joins every row of the three tables; fingerprinting them is one cheap scan
(a row count and an XOR of key hashes per table and date). A long-lived process (the console) keeps
the counts of every date it measured with the fingerprints they were measured at; each refresh
fingerprints the range, then re-measures only the dates that changed:

- a changed date of a stage's table changes that date only;
- a changed date of the reference table (player_game_summary) also changes the bootstrap counts of every later date of the
  season (a player's earlier games), so those are re-measured too;
- the distinct-player counts of a month are re-measured when any of its dates is.

Where the warehouse has a change stamp (:meth:`Warehouse.change_stamp`: a DuckDB file's identity,
size and times) and it is the one seen when every date known was last checked, nothing was written
since: the fingerprint is skipped too, and nothing is read from the warehouse.

Answers are the same as :func:`backfill.coverage.daily_coverage` and ``monthly_coverage`` (the
tests check it); only the work differs. :meth:`CoverageSnapshot.persisted` keeps the snapshot between
processes (:mod:`backfill.coverage_store`), so a fresh process fingerprints and re-measures only what
changed since another process last looked; that is how the product measures coverage by default.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from contextlib import AbstractContextManager
from typing import Any, cast

import pandas as pd

from backfill import coverage
from backfill.config import Settings
from backfill.coverage_store import CoverageStore, collection_paused
from backfill.pipeline import Pipeline
from backfill.seasons import season_of, season_start
from backfill.validate import date_set
from backfill.warehouse import Warehouse


def fingerprint_sql(pipeline: Pipeline) -> str:
    """Per stage table and date: rows and an order-free hash of their keys (duplicates change the
    count). The reference is fingerprinted from the season's start: its history decides bootstrap."""
    ref = pipeline.reference
    parts = [
        f"SELECT '{ref.name}' AS source, {ref.date_column} AS game_date, COUNT(*) AS row_count,\n"
        f"  BIT_XOR(FARM_FINGERPRINT({ref.player_column})) AS key_hash\n"
        f"FROM {{{ref.name}}} WHERE {ref.date_column} BETWEEN @history_start AND @end GROUP BY {ref.date_column}"
    ]
    for stage in pipeline.backfillable:
        key = ", '|', ".join(
            f"CAST({column} AS STRING)" for column in stage.key if column != stage.date_column
        )
        parts.append(
            f"SELECT '{stage.name}', {stage.date_column}, COUNT(*), BIT_XOR(FARM_FINGERPRINT(CONCAT({key})))\n"
            f"FROM {{{stage.name}}} WHERE {stage.date_column} BETWEEN @start AND @end GROUP BY {stage.date_column}"
        )
    return "\nUNION ALL\n".join(parts)


class CoverageSnapshot:
    """Coverage of one warehouse under one history rule, kept fresh at the cost of a fingerprint (or,
    while the warehouse's change stamp shows nothing was written, of nothing)."""

    def __init__(self, warehouse: Warehouse, settings: Settings, store: CoverageStore | None = None):
        self.warehouse = warehouse
        self.settings = settings
        self.store = store
        """Where the snapshot is loaded from and saved to after each change (None: memory only)."""
        self._lock = threading.Lock()
        # (rows, key hash) of each (table, date), or when its partition last changed where the
        # warehouse reports that (then nothing is scanned).
        self._fingerprints: dict[tuple[str, dt.date], object] = {}
        self._counts: dict[dt.date, dict] = {}  # game dates measured; absent dates had no games
        self._measured: set[dt.date] = set()  # every date measured, games or not
        self._months: dict[tuple[str, dt.date, dt.date], dict] = {}
        self.dates_measured = 0
        """How many dates were (re)measured since the snapshot was made (for tests and benchmarks)."""
        self._stamp: str | None = None
        """The warehouse's change stamp when every date known was last checked (None: not all were):
        while the warehouse shows the same stamp, nothing was written and no fingerprint is needed."""
        self._bounds: tuple[str, tuple[dt.date, dt.date] | None] | None = None
        """The stamp the data's first and last game dates were read at, and those dates."""
        self._tables_checked: str | None = None
        """The stamp the stage tables were last found at."""
        self._changed = False  # since loaded or saved
        if store is not None:
            with collection_paused():
                self._restore(store.load())

    @classmethod
    def persisted(cls, warehouse: Warehouse, settings: Settings) -> CoverageSnapshot:
        """The snapshot kept between processes for this warehouse and pipeline (loaded now), or a new
        one kept in memory only where nothing can be kept (``cache_dir = off``, ``:memory:``)."""
        pipeline = settings.pipeline
        sql = [
            fingerprint_sql(pipeline),
            coverage.daily_sql(pipeline),
            coverage.monthly_players_sql(pipeline),
        ]
        return cls(warehouse, settings, CoverageStore.of(warehouse, settings, sql))

    def coverage(self, start: dt.date, end: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Daily and monthly coverage of the range, re-measuring only what changed."""
        with self._lock, self._session(start, end, months=True):
            daily = self._daily(start, end)
            months = self._month_counts(start, end)
            self._save()
            return daily, coverage.monthly_from(daily, months)

    def daily(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Daily coverage of the range alone (no distinct-player counts), re-measuring only what changed."""
        with self._lock, self._session(start, end, months=False):
            daily = self._daily(start, end)
            self._save()
            return daily

    def bounds(self) -> tuple[dt.date, dt.date] | None:
        """The first and last game dates of the data (:func:`backfill.coverage.data_bounds`), asked
        of the warehouse unless the change stamp vouches for the ones read before."""
        with self._lock:
            stamp = self.warehouse.change_stamp()
            if stamp is not None and self._bounds is not None and self._bounds[0] == stamp:
                return self._bounds[1]
            found = coverage.data_bounds(self.warehouse)
            self._bounds = None if stamp is None else (stamp, found)
            self._changed = True
            return found

    def check_stage_tables(self) -> None:
        """:meth:`Warehouse.check_stage_tables`, unless the change stamp vouches for a check passed before."""
        with self._lock:
            stamp = self.warehouse.change_stamp()
            if stamp is not None and stamp == self._tables_checked:
                return
            self.warehouse.check_stage_tables()
            self._tables_checked = stamp
            self._changed = True

    def _session(self, start: dt.date, end: dt.date, months: bool) -> AbstractContextManager:
        """The warehouse's session (DuckDB: the open file) where something must be read; none where
        the stamp vouches for everything the range needs (nothing is opened then)."""
        current = self._vouched(self.warehouse.change_stamp(), date_set(start, end))
        if current and months:
            current = all(key in self._months for key in _month_keys(start, end))
        return contextlib.nullcontext() if current else self.warehouse.session()

    def _vouched(self, stamp: str | None, dates: frozenset[dt.date]) -> bool:
        """Whether the warehouse's stamp vouches for the counts of these dates: all were checked when
        the warehouse last showed this stamp, so nothing was written since."""
        return stamp is not None and stamp == self._stamp and dates <= self._measured

    def _daily(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        wanted = date_set(start, end)
        # Read before anything else: what is measured next is at least as new as the stamp.
        stamp = self.warehouse.change_stamp()
        if not self._vouched(stamp, wanted):
            verified_all = self._measured <= wanted
            changed = self._refresh_fingerprints(start, end)
            stale = (wanted - self._measured) | (changed & wanted)
            if stale:
                self._measure(min(stale), max(stale))
            # Every date known was checked against the warehouse as of the stamp, or none is vouched for.
            stamp = stamp if verified_all else None
            self._changed |= stamp != self._stamp
            self._stamp = stamp
        counts = pd.DataFrame([self._counts[day] for day in sorted(wanted & set(self._counts))])
        if counts.empty:
            counts = pd.DataFrame(columns=["game_date"])
        return coverage.daily_from_counts(counts, self.settings, start, end)

    def _refresh_fingerprints(self, start: dt.date, end: dt.date) -> set[dt.date]:
        """Fingerprint the range; returns the dates whose coverage may have changed."""
        history_start = season_start(start)
        reference = self.settings.pipeline.reference.name
        # Where the warehouse says when each date partition last changed (BigQuery's
        # INFORMATION_SCHEMA.PARTITIONS), that metadata is the fingerprint: nothing is scanned.
        times = self.warehouse.partition_times(self.settings.pipeline.stages, history_start, end)
        now: dict[tuple[str, dt.date], object] = dict(times) if times is not None else {}
        if times is None:
            rows = self.warehouse.query(
                fingerprint_sql(self.settings.pipeline),
                {"start": start, "end": end, "history_start": history_start},
            )
            # Plain lists first: iterating the frame's columns one value at a time is far slower.
            columns = (rows[name].tolist() for name in ("source", "game_date", "row_count", "key_hash"))
            now = {
                (source, day): (int(count), int(key_hash)) for source, day, count, key_hash in zip(*columns)
            }
        now = {
            key: value
            for key, value in now.items()
            if (history_start if key[0] == reference else start) <= key[1] <= end
        }
        known = {
            key: value
            for key, value in self._fingerprints.items()
            if (history_start if key[0] == reference else start) <= key[1] <= end
        }
        differ = {key for key in set(now) | set(known) if now.get(key) != known.get(key)}
        self._changed |= bool(differ)
        changed = {day for _, day in differ}
        # A reference row changed: every later date of that season counts its players' history anew.
        for source, day in differ:
            if source == reference:
                changed |= {
                    later for later in self._measured if later > day and season_of(later) == season_of(day)
                }
        self._fingerprints = {
            key: value for key, value in self._fingerprints.items() if key not in known
        } | now
        return changed

    def _measure(self, first: dt.date, last: dt.date) -> None:
        counts = coverage.daily_counts(self.warehouse, self.settings, first, last)
        span = coverage.date_span(first, last)
        for day in span:
            self._counts.pop(day, None)
        for row in counts.to_dict("records"):
            self._counts[row["game_date"]] = row
        self._measured |= set(span)
        self.dates_measured += len(span)
        self._changed = True
        stale_periods = set(_periods(first, last))
        self._months = {key: value for key, value in self._months.items() if key[0] not in stale_periods}

    def _month_counts(self, start: dt.date, end: dt.date) -> pd.DataFrame:
        """Distinct-player counts of each month of the range (clipped to it), measured where missing."""
        keys = _month_keys(start, end)
        missing = [key for key in keys if key not in self._months]
        if missing:
            first = min(key[1] for key in missing)
            last = max(key[2] for key in missing)
            rows = coverage.monthly_player_counts(self.warehouse, first, last)
            measured = {row["period"]: row for row in rows.to_dict("records")}
            # [first, last] covers each missing month's clipped part exactly (edges are clipped alike).
            nobody = {"players_total": 0} | {
                f"{name}_players_covered": 0 for name in self.settings.pipeline.stage_names
            }
            for key in missing:
                self._months[key] = measured.get(key[0], {"period": key[0], **nobody})
            self._changed = True
        return pd.DataFrame([self._months[key] for key in keys]) if keys else pd.DataFrame(columns=["period"])

    # -- kept between processes -------------------------------------------------------------------

    def _save(self) -> None:
        if self.store is not None and self._changed and self.store.save(self._state()):
            self._changed = False

    def _state(self) -> dict[str, Any]:
        """Everything the snapshot knows, as JSON values (dates as ordinals)."""
        columns = [column for column in next(iter(self._counts.values()), {}) if column != "game_date"]
        bounds = self._bounds
        return {
            "stamp": self._stamp,
            "bounds": None
            if bounds is None
            else [bounds[0], *(() if bounds[1] is None else (day.toordinal() for day in bounds[1]))],
            "tables_checked": self._tables_checked,
            "fingerprints": [
                [source, day.toordinal(), *_fingerprint_out(value)]
                for (source, day), value in self._fingerprints.items()
            ],
            "measured": sorted(day.toordinal() for day in self._measured),
            "count_columns": columns,
            "counts": [
                [day.toordinal(), *(int(row[column]) for column in columns)]
                for day, row in self._counts.items()
            ],
            "months": [
                [
                    period,
                    first.toordinal(),
                    last.toordinal(),
                    {k: v if k == "period" else int(v) for k, v in row.items()},
                ]
                for (period, first, last), row in self._months.items()
            ],
        }

    def _restore(self, state: dict[str, Any] | None) -> None:
        """Take a saved state; one that does not read back whole is ignored (all is measured anew)."""
        if state is None:
            return
        try:
            # A fingerprint that does not read back as it was written only makes its date re-measured.
            fingerprints = {
                (source, dt.date.fromordinal(day)): _fingerprint_in(value)
                for source, day, *value in state["fingerprints"]
            }
            measured = {dt.date.fromordinal(day) for day in state["measured"]}
            columns = [_text(column) for column in state["count_columns"]]
            counts = {}
            for day, *values in state["counts"]:
                if len(values) != len(columns):
                    raise ValueError("a count row of the wrong width")
                date = dt.date.fromordinal(day)
                counts[date] = {"game_date": date} | dict(zip(columns, map(_integer, values)))
            months = {
                (_text(period), dt.date.fromordinal(first), dt.date.fromordinal(last)): {
                    k: _text(v) if k == "period" else _integer(v) for k, v in row.items()
                }
                for period, first, last, row in state["months"]
            }
            stamp = None if state["stamp"] is None else _text(state["stamp"])
            tables_checked = None if state["tables_checked"] is None else _text(state["tables_checked"])
            bounds = None
            if state["bounds"] is not None:
                bounds_stamp, *days = state["bounds"]
                first_last = None
                if days:
                    first, last = days
                    first_last = (dt.date.fromordinal(first), dt.date.fromordinal(last))
                bounds = (_text(bounds_stamp), first_last)
        except (KeyError, TypeError, ValueError, OverflowError, AttributeError):
            return
        if not set(counts) <= measured:
            return
        self._fingerprints, self._measured, self._counts, self._months = (
            fingerprints,
            measured,
            counts,
            months,
        )
        self._stamp = stamp
        self._bounds, self._tables_checked = bounds, tables_checked


def _fingerprint_out(value: object) -> list:
    """A fingerprint as JSON values: [rows, key hash], or [when the partition last changed]."""
    if isinstance(value, dt.datetime):
        return [value.isoformat()]
    rows, key_hash = cast(tuple[int, int], value)
    return [int(rows), int(key_hash)]


def _fingerprint_in(value: list) -> object:
    return dt.datetime.fromisoformat(value[0]) if len(value) == 1 else tuple(value)


def _integer(value: object) -> int:
    if type(value) is not int:
        raise TypeError(f"not an integer: {value!r}")
    return value


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"not a string: {value!r}")
    return value


def _periods(start: dt.date, end: dt.date) -> list[str]:
    """The months (``YYYY-MM``) the range touches, in order."""
    months = range(start.year * 12 + start.month - 1, end.year * 12 + end.month)
    return [f"{month // 12:04d}-{month % 12 + 1:02d}" for month in months]


def _month_keys(start: dt.date, end: dt.date) -> list[tuple[str, dt.date, dt.date]]:
    """Each month of the range with its part in the range: the keys of the distinct-player counts."""
    return [(period, *_clip(period, start, end)) for period in _periods(start, end)]


def _clip(period: str, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The part of a month (``YYYY-MM``) that lies in the range."""
    first = dt.date.fromisoformat(f"{period}-01")
    following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return max(first, start), min(following - dt.timedelta(days=1), end)
