"""Cache folders keep what is in use: unused files and dead writers' temporary files go (backfill.cache_files)."""

from __future__ import annotations

import os
import time

from backfill import cache_files

DAY = 86_400


def _aged(path, seconds: float, payload: bytes = b"x"):
    path.write_bytes(payload)
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_the_first_write_to_a_folder_deletes_unused_files_and_dead_writers_temporary_files(tmp_path):
    folder = tmp_path / "coverage"
    folder.mkdir()
    unused = _aged(folder / "old-pipeline.json", 31 * DAY)
    in_use = _aged(folder / "read-last-week.json", 7 * DAY)
    dead_writer = _aged(folder / ".snap.json.4242.1.tmp", 2 * 3600)
    writing_now = _aged(folder / ".snap.json.4343.1.tmp", 5)

    cache_files.write(folder / "snap.json", b"payload")

    assert not unused.exists() and not dead_writer.exists()
    assert in_use.exists() and writing_now.exists()
    assert cache_files.read(folder / "snap.json") == b"payload"


def test_reading_a_file_marks_it_used_so_a_file_read_every_day_is_never_swept(tmp_path):
    path = tmp_path / "sql" / "statement.json"
    cache_files.write(path, b"translated")
    then = time.time() - 29 * DAY
    os.utime(path, (then, then))

    assert cache_files.read(path) == b"translated"

    assert time.time() - path.stat().st_mtime < DAY


def test_a_damaged_file_is_not_marked_used(tmp_path):
    path = _aged(tmp_path / "damaged.json", 2 * DAY, b"no header at all")
    before = path.stat().st_mtime
    assert cache_files.read(path) is None
    assert path.stat().st_mtime == before
