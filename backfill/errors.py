"""The project's own exceptions: a small hierarchy that callers can catch by meaning."""


class BackfillError(Exception):
    """Base class of every error this package raises on purpose."""


class BadInput(BackfillError):
    """Input that cannot be accepted; the message is one line, and nothing was written."""
