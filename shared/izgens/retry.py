"""The one retry loop of every provider client (BytePlus, Plisio): exponential backoff with
jitter, the provider's `Retry-After` honoured, a bounded number of attempts.

Only calls that are safe to repeat are retried (the callers say which), and a provider
that asks to wait longer than `max_wait` is not waited for: the error goes to the caller,
who has a better place to wait (the queue, the next reconciliation).
"""

from __future__ import annotations

import email.utils
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from izgens.errors import ProviderError, ProviderRateLimited
from izgens.logs import log_event

__all__ = ["NO_RETRY", "Retry", "retry_after_seconds"]

logger = logging.getLogger("izgens.retry")

T = TypeVar("T")


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A Retry-After header as seconds: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass(frozen=True)
class Retry:
    """`retries` more attempts after the first, waiting `backoff` × 2ⁿ plus up to as much
    again at random (no two clients retry in step), never more than `max_wait` at once."""

    retries: int = 2
    backoff: float = 0.25
    max_wait: float = 8.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def delay(self, attempt: int, error: ProviderError) -> float | None:
        """How long to wait before attempt `attempt + 1`; None: do not retry."""
        if attempt >= self.retries:
            return None
        base = self.backoff * 2.0**attempt
        delay = min(base + random.uniform(0, base), self.max_wait)
        if isinstance(error, ProviderRateLimited) and error.retry_after is not None:
            if error.retry_after > self.max_wait:
                return None
            delay = max(delay, error.retry_after)
        return delay

    def run(
        self,
        attempt: Callable[[], T],
        *,
        transient: Callable[[ProviderError], bool],
        what: str,
    ) -> T:
        """`attempt()` until it succeeds, raises a non-transient error, or retries run out."""
        tries = 0
        while True:
            try:
                return attempt()
            except ProviderError as error:
                wait = self.delay(tries, error) if transient(error) else None
                if wait is None:
                    raise
                tries += 1
                log_event(
                    logger,
                    "provider call failed; retrying",
                    logging.WARNING,
                    call=what,
                    error=error.code,
                    provider_code=error.provider_code,
                    attempt=tries,
                    of=self.retries,
                    wait_s=round(wait, 2),
                )
                self.sleep(wait)


NO_RETRY = Retry(retries=0)
