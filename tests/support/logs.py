"""Log records as the process wrote them, for tests that check what was (not) logged.

A handler of our own rather than caplog: `izgens.logs.configure_logging()`, which every
handler calls, replaces the root logger's handlers (caplog's among them)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from izgens.logs import JsonFormatter

__all__ = ["LogCapture", "capture_logs"]


class LogCapture(logging.Handler):
    """Every record at `level` or above that reaches it, in order."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def clear(self) -> None:
        self.records.clear()

    def errors(self) -> list[str]:
        """`logger: message` of each error, and of each record carrying a traceback."""
        return [
            f"{r.name}: {r.getMessage()}"
            for r in self.records
            if r.levelno >= logging.ERROR or r.exc_info
        ]

    def lines(self) -> list[str]:
        """The JSON lines production would write for these records (tracebacks too)."""
        formatter = JsonFormatter()
        return [formatter.format(r) for r in self.records]


@contextlib.contextmanager
def capture_logs(logger: str | None = None, level: int = logging.DEBUG) -> Iterator[LogCapture]:
    """Records of `logger` (the root by default: every thread of the process, the dev
    server's included); the logger is opened to `level` meanwhile."""
    target = logging.getLogger(logger)
    capture = LogCapture(level)
    saved = target.level
    if logger is not None:  # the root's level is configure_logging()'s
        target.setLevel(level)
    target.addHandler(capture)
    try:
        yield capture
    finally:
        target.removeHandler(capture)
        if logger is not None:
            target.setLevel(saved)
