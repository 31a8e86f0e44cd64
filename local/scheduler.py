"""The dev stack's stand-in for the EventBridge schedule: `cleanup` on a short interval.

On AWS an EventBridge rule invokes `cleanup` every few minutes. Locally a background thread
calls the same jobs (`izgens.cleanup.run_jobs`) every `IZGENS_CLEANUP_INTERVAL` seconds
(default 10; 0 turns it off), so stuck generations, retention and due account purges behave
as in production while `make dev` runs. A run in progress finishes before `stop()` returns.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_INTERVAL", "CleanupScheduler", "interval_from_env"]

logger = logging.getLogger("izgens_local.scheduler")

DEFAULT_INTERVAL = 10.0


def interval_from_env() -> float:
    """Seconds between runs from IZGENS_CLEANUP_INTERVAL; 0 means off."""
    raw = os.environ.get("IZGENS_CLEANUP_INTERVAL", "").strip()
    if not raw:
        return DEFAULT_INTERVAL
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(
            f"IZGENS_CLEANUP_INTERVAL must be a number of seconds (0 = off), not {raw!r}"
        ) from None
    if value < 0:
        raise ValueError("IZGENS_CLEANUP_INTERVAL must be 0 (off) or more")
    return value


def _run_all_jobs() -> dict[str, Any]:
    from izgens.cleanup import run_jobs

    return run_jobs()


class CleanupScheduler:
    """Runs `run` every `interval` seconds on a daemon thread until `stop()`."""

    def __init__(
        self, interval: float, run: Callable[[], Any] = _run_all_jobs, *, first_delay: float = 0
    ) -> None:
        self.interval = interval
        self.run = run
        self.first_delay = first_delay
        self.runs = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    def start(self) -> CleanupScheduler:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name="izgens-cleanup-scheduler", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to end; waits for a run in progress (jobs are bounded)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        if self._stopping.wait(self.first_delay):
            return
        while not self._stopping.is_set():
            try:
                self.run()
            except Exception:  # noqa: BLE001 - a failed run is logged; the next one still comes
                logger.exception("scheduled cleanup run failed")
            self.runs += 1
            if self._stopping.wait(self.interval):
                return
