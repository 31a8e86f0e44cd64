"""The izgens error tree. The library raises these; only `izgens.http` turns them into HTTP.

IzgensError                      code            what the caller does
├── Unauthenticated              unauthenticated the token is missing, forged or expired
├── NotFound                     not_found       also for another user's ids
├── InvalidRequest               invalid_request the request can never succeed as sent
│   └── MalformedJson            invalid_json    a body that is not (usable) JSON
├── PayloadTooLarge              payload_too_large
├── IdempotencyConflict          idempotency_conflict  same key, other body
├── Forbidden                    (base of the account gates)
│   ├── AgeNotConfirmed          age_not_confirmed
│   ├── AccountBlocked           account_blocked
│   └── DeletionPending          deletion_pending
├── InsufficientCredits          insufficient_credits
├── RateLimited                  rate_limited    retry after `retry_after` seconds
├── InvalidTransition            invalid_transition  a state machine refused a move
├── DatabaseUnavailable          database_unavailable try again shortly
└── ProviderError                (an external service failed)
    ├── ProviderRejected         provider_rejected   definite: refund now
    ├── ProviderUnavailable      provider_unavailable ambiguous: reconcile later
    │   └── NotConfigured        not_configured      a setting is missing: an operator acts
    └── ProviderRateLimited      provider_busy       capacity: try later

Our own bugs (a function called with what it never accepts) are plain `ValueError`s: a
500 that pages someone, never a 4xx that blames the client.
"""

from __future__ import annotations

__all__ = [
    "AccountBlocked",
    "AgeNotConfirmed",
    "DatabaseUnavailable",
    "DeletionPending",
    "Forbidden",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidRequest",
    "InvalidTransition",
    "IzgensError",
    "MalformedJson",
    "NotConfigured",
    "NotFound",
    "PayloadTooLarge",
    "ProviderError",
    "ProviderRateLimited",
    "ProviderRejected",
    "ProviderUnavailable",
    "RateLimited",
    "Unauthenticated",
]


class IzgensError(Exception):
    code = "internal_error"
    title = "Internal error"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title


class Unauthenticated(IzgensError):
    code = "unauthenticated"
    title = "Authentication required"


class NotFound(IzgensError):
    code = "not_found"
    title = "Not found"


class InvalidRequest(IzgensError):
    code = "invalid_request"
    title = "Invalid request"


class MalformedJson(InvalidRequest):
    code = "invalid_json"
    title = "Malformed JSON"


class PayloadTooLarge(IzgensError):
    code = "payload_too_large"
    title = "Payload too large"


class IdempotencyConflict(IzgensError):
    code = "idempotency_conflict"
    title = "Idempotency-Key reused with another request"


class Forbidden(IzgensError):
    code = "forbidden"
    title = "Forbidden"


class AgeNotConfirmed(Forbidden):
    code = "age_not_confirmed"
    title = "Confirm that you are 18 or older first"


class AccountBlocked(Forbidden):
    code = "account_blocked"
    title = "This account is blocked"


class DeletionPending(Forbidden):
    code = "deletion_pending"
    title = "This account is scheduled for deletion"


class InsufficientCredits(IzgensError):
    code = "insufficient_credits"
    title = "Not enough credits"

    def __init__(self, balance: int, required: int) -> None:
        super().__init__(f"balance {balance}, required {required}")
        self.balance = balance
        self.required = required


class RateLimited(IzgensError):
    code = "rate_limited"
    title = "Too many requests"

    def __init__(self, retry_after: int, bucket: str = "") -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after
        self.bucket = bucket


class InvalidTransition(IzgensError):
    code = "invalid_transition"
    title = "Not possible in the current state"

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"cannot move from {current} to {target}")
        self.current = current
        self.target = target


class DatabaseUnavailable(IzgensError):
    code = "database_unavailable"
    title = "The database is unavailable"


class ProviderError(IzgensError):
    code = "provider_error"
    title = "An external service failed"

    def __init__(
        self,
        detail: str | None = None,
        *,
        provider_code: str | None = None,
        provider_message: str | None = None,
        transient: bool = False,
    ) -> None:
        super().__init__(detail)
        self.provider_code = provider_code
        # the provider's own words, fit to show the user (no URLs, keys or request ids)
        self.provider_message = provider_message
        # a failure the same call may not meet again (a timeout, a 5xx, a 429): a client
        # retries it if the call is safe to repeat (izgens.retry)
        self.transient = transient


class ProviderRejected(ProviderError):
    code = "provider_rejected"
    title = "The provider refused the request"


class ProviderUnavailable(ProviderError):
    code = "provider_unavailable"
    title = "The provider is unavailable"


class ProviderRateLimited(ProviderError):
    code = "provider_busy"
    title = "The provider is at capacity"

    def __init__(
        self,
        detail: str | None = None,
        *,
        provider_code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail, provider_code=provider_code, transient=True)
        self.retry_after = retry_after


class NotConfigured(ProviderUnavailable):
    """A dependency cannot be used because a setting is missing (a 503, not the caller's
    fault: never a 401 or a 4xx)."""

    code = "not_configured"
    title = "The service is not configured"
