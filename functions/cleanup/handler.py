"""The `cleanup` function: run by an EventBridge schedule; a plain handler, no HTTP."""

from __future__ import annotations

from typing import Any

from izgens.cleanup import run_jobs
from izgens.logs import configure_logging


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Runs every job, or those named in the event's `jobs` list (manual invocations)."""
    configure_logging()
    names = event.get("jobs") if isinstance(event, dict) else None
    return run_jobs(names if isinstance(names, list) else None)
