"""The project's own exceptions: a small hierarchy that callers can catch by meaning."""


class BackfillError(Exception):
    """Base class of every error this package raises on purpose."""


class BadInput(BackfillError):
    """Input that cannot be accepted; the message is one line, and nothing was written."""


class GaveUp(BackfillError):
    """An attempt not to repeat in this run, whatever its message says (a job that hung past its
    timeout: another try or a split would hang as long again, issue 21)."""


class RunCancelled(BackfillError):
    """An operator cancelled the run while one of its jobs was working: the job is stopped."""


class WarehouseRefused(BackfillError):
    """The warehouse refused for a reason that a setting, a quota or a permission must change (not a
    retry); the message is one line saying what to change, ``__cause__`` the engine's own error."""


class TryLater(BackfillError):
    """The warehouse refused for now for a reason only time lifts (rows still in BigQuery's streaming
    buffer); the message says why and when to try again, ``__cause__`` the engine's own error."""
