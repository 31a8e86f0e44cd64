"""The scheduled jobs of the `cleanup` function (and `izgens cleanup`).

Each job is bounded per run, idempotent, and safe to run concurrently with itself (rows
are claimed with `FOR UPDATE SKIP LOCKED` or moved by idempotent SQL transitions), and
returns counts; a run logs all counts as one structured line.

Failures page someone: a job that raised counts `error`, and a job's own `errors` (a
provider or the bucket failed) and `failed` (a purge interrupted) are failures too. Each
job logs `{"job": name, "failures": N}` (the template's alarm counts them), and the
`cleanup` function's invocation fails when any job failed (`izgens cleanup` exits 1), so a
purge that cannot finish never lets the 30-day deletion promise lapse in silence.

A run started with `now=True` (`izgens cleanup --now`) treats in-flight work as due at
once: a job that waits before touching work (generations count as stuck after 60 s
untouched) asks `due_now()` and skips the wait. Retention and grace periods are promises
to users and never shortened by it.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterable

from izgens.logs import log_event

__all__ = ["FAILURE_COUNTS", "JOBS", "CleanupFailed", "due_now", "failed_jobs", "job", "run_jobs"]

logger = logging.getLogger("izgens.cleanup")

Job = Callable[[], dict[str, int]]
JOBS: dict[str, Job] = {}
# the counts that mean something went wrong (anything else is work done or found)
FAILURE_COUNTS = ("error", "errors", "failed")
_due_now: contextvars.ContextVar[bool] = contextvars.ContextVar("izgens_cleanup_now", default=False)


class CleanupFailed(Exception):
    """A run in which at least one job failed (the `cleanup` function raises it)."""


def failed_jobs(results: dict[str, dict[str, int]]) -> list[str]:
    """The jobs of a run that failed, in run order."""
    return [name for name, counts in results.items() if _failures(counts)]


def _failures(counts: dict[str, int]) -> int:
    return sum(int(counts.get(key, 0)) for key in FAILURE_COUNTS)


def due_now() -> bool:
    """True inside a run started with `now=True`: skip waiting thresholds (not retention)."""
    return _due_now.get()


def job(name: str) -> Callable[[Job], Job]:
    def register(fn: Job) -> Job:
        JOBS[name] = fn
        return fn

    return register


@job("generations")
def reconcile_generations() -> dict[str, int]:
    """Stuck generations driven to a final state with the provider's truth; waiting ones
    failed and refunded past GENERATION_MAX_WAIT_MINUTES, the rest dispatched in arrival
    order."""
    from izgens.generations import Lifecycle

    return Lifecycle.from_settings().reconcile(older_than_seconds=0 if due_now() else 60, limit=200)


@job("inputs")
def reference_inputs() -> dict[str, int]:
    """Generations' own copies of their references, once the generation has ended."""
    from izgens.generations import Lifecycle

    return Lifecycle.from_settings().delete_inputs()


@job("purchases")
def reconcile_purchases() -> dict[str, int]:
    """Purchases still pending after 30 minutes, settled from Plisio's own records, so a
    lost callback never loses a payment; one never invoiced is expired after
    PURCHASE_INVOICE_TIMEOUT_HOURS."""
    from datetime import timedelta

    from izgens import payments
    from izgens.config import get_settings
    from izgens.db import get_database

    if get_settings().plisio_secret_key is None:
        # a stack without payments (tests, a generation-only dev setup); in production the
        # secret is always set and its absence is an error elsewhere too
        log_event(logger, "purchases job skipped: PLISIO_SECRET_KEY is not set", logging.WARNING)
        return {"checked": 0, "unconfigured": 1}
    settings = get_settings()
    older_than = timedelta(0) if due_now() else timedelta(minutes=30)
    report = payments.reconcile_pending_purchases(
        get_database(),
        payments.get_plisio_client(),
        older_than=older_than,
        limit=100,
        expire_uninvoiced_after=timedelta(hours=settings.purchase_invoice_timeout_hours),
    )
    return report.model_dump()


@job("exports")
def exports() -> dict[str, int]:
    """Build exports whose hand-off was lost or whose builder died (lease run out), for up
    to a minute per run; delete expired ones (object and link)."""
    from izgens.privacy import Privacy

    privacy = Privacy.from_settings()
    built = 0
    deadline = time.monotonic() + 60
    while built < 20 and time.monotonic() < deadline and privacy.build_export():
        built += 1
    return {"built": built, "expired": privacy.expire_exports(500)}


@job("references")
def references() -> dict[str, int]:
    """Reference uploads past REFERENCE_RETENTION_HOURS: objects, then rows."""
    from izgens.privacy import Privacy

    return {"deleted": Privacy.from_settings().delete_expired_references(1000)}


@job("purge")
def purge() -> dict[str, int]:
    """Accounts whose deletion is due (or whose purge died halfway)."""
    from izgens.purge import Purger

    return Purger.from_settings().purge_due_accounts(20)


@job("payment_retention")
def payment_retention() -> dict[str, int]:
    """Payment records past PAYMENT_RETENTION_YEARS."""
    from izgens.config import get_settings
    from izgens.db import get_database

    row = get_database().one(
        "select izgens.delete_old_payments(%s, %s) as n",
        (get_settings().payment_retention_years, 1000),
    )
    return {"deleted": int(row["n"]) if row else 0}


@job("rate_limits")
def rate_limits() -> dict[str, int]:
    """Rate-limit windows older than a day."""
    from izgens.db import get_database

    row = get_database().one("select izgens.delete_old_rate_limits(24) as n")
    return {"deleted": int(row["n"]) if row else 0}


@job("margins")
def margins() -> dict[str, int]:
    """Settled generations the provider billed more for than they were charged (alarmed on:
    one log line each)."""
    from izgens.db import get_database
    from izgens.margins import check_margins

    return check_margins(get_database())


@job("ledger_check")
def ledger_check() -> dict[str, int]:
    """The books: every profile whose balance is not the sum of its ledger (alarmed on)."""
    from izgens import credits
    from izgens.db import get_database

    found = credits.mismatches(get_database())
    for mismatch in found[:20]:
        log_event(
            logger,
            "ledger mismatch",
            logging.ERROR,
            user=str(mismatch.user_id),
            balance=mismatch.balance,
            ledger_sum=mismatch.ledger_sum,
        )
    # the alarm's metric filter matches this line: {"job": "ledger_check", "mismatches": N}
    log_event(logger, "ledger check", job="ledger_check", mismatches=len(found))
    return {"mismatches": len(found)}


def run_jobs(names: Iterable[str] | None = None, *, now: bool = False) -> dict[str, dict[str, int]]:
    """Run the named jobs (all by default); a failing job is logged and the others still run.
    `now`: in-flight work is due at once (see the module docstring)."""
    selected = list(names) if names is not None else list(JOBS)
    unknown = [n for n in selected if n not in JOBS]
    if unknown:
        raise ValueError(f"unknown cleanup job(s): {', '.join(unknown)}; known: {', '.join(JOBS)}")
    token = _due_now.set(now)
    try:
        return _run(selected)
    finally:
        _due_now.reset(token)


def _run(selected: list[str]) -> dict[str, dict[str, int]]:
    results: dict[str, dict[str, int]] = {}
    for name in selected:
        started = time.perf_counter()
        try:
            results[name] = JOBS[name]()
        except Exception:  # noqa: BLE001 - one broken job must not stop the others
            logger.exception("cleanup job failed", extra={"fields": {"job": name}})
            results[name] = {"error": 1}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000)
        failures = _failures(results[name])
        # the alarm's metric filter matches this line: {"job": name, "failures": N}
        level = logging.ERROR if failures else logging.INFO
        log_event(logger, "cleanup job done", level, job=name, failures=failures)
    log_event(logger, "cleanup run", jobs=results)
    return results
