"""The `cleanup` function: run by an EventBridge schedule; a plain handler, no HTTP."""

from __future__ import annotations

from typing import Any

from izgens.cleanup import CleanupFailed, failed_jobs, run_jobs
from izgens.logs import configure_logging


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Runs every job, or those named in the event's `jobs` list (manual invocations).
    A run in which any job failed fails the invocation (the Errors alarm, the failure
    queue); every job still ran, and its counts are in the log."""
    configure_logging()
    names = event.get("jobs") if isinstance(event, dict) else None
    results = run_jobs(names if isinstance(names, list) else None)
    failed = failed_jobs(results)
    if failed:
        raise CleanupFailed(f"cleanup job(s) failed: {', '.join(failed)}")
    return results
