"""The dev stack's stand-in for the EventBridge schedule: `cleanup` on a short interval.

On AWS an EventBridge rule invokes `cleanup` every few minutes. Locally a background thread
calls the same jobs (`izgens.cleanup.run_jobs`) every `IZGENS_CLEANUP_INTERVAL` seconds
(default 10; 0 turns it off), so stuck generations, retention and due account purges behave
as in production while `make dev` runs. A run in progress finishes before `stop()` returns.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from izgens.container import CleanupScheduler as _ScheduleThread
from izgens.container import run_all_jobs

__all__ = ["DEFAULT_INTERVAL", "CleanupScheduler", "interval_from_env"]

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


class CleanupScheduler(_ScheduleThread):
    """The container's schedule thread, with the first run right away (dev wants it now)."""

    def __init__(
        self, interval: float, run: Callable[[], Any] = run_all_jobs, *, first_delay: float = 0
    ) -> None:
        super().__init__(interval, run, first_delay=first_delay)
