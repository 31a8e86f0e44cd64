"""What routes depend on, as named aliases (`CurrentUser`, `Db`), the one rule for the client address, and `blocking`, the one way a route runs the sync library."""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING, Annotated, ParamSpec, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from izgens import errors
from izgens.auth import User
from izgens.db import Database
from izgens.logs import log_event

if TYPE_CHECKING:
    from collections.abc import Callable


logger = logging.getLogger("izgens.http")

__all__ = ["CurrentUser", "Db", "blocking", "client_ip", "count_auth_failure"]

P = ParamSpec("P")

T = TypeVar("T")

# A request that came through Mangum is a Lambda invocation: the only one its process is
# serving, so blocking work runs right where it is asked for (a worker thread per call cost
# about half a warm request). Under uvicorn (the container, the dev server) it goes to a
# thread, as FastAPI does with a `def` route, so one slow call never stalls the others.
_inline_blocking: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "izgens_inline_blocking", default=False
)


async def blocking(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """Run sync library code (the database, the bucket, a provider) from an async route:
    the one way every route calls it (see `_inline_blocking`)."""
    if _inline_blocking.get():
        return fn(*args, **kwargs)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args, **kwargs)


_bearer = HTTPBearer(auto_error=False, description="Supabase access token")


async def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The verified caller. A missing token costs nothing (the signed-out path imports no
    database driver); a presented token that fails counts against the caller's address,
    and past RATE_AUTH_FAILURES_IP per window the answer is 429, not 401."""
    from izgens.auth import get_verifier

    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise errors.Unauthenticated("send Authorization: Bearer <access token>")
    try:
        return await blocking(get_verifier().verify, credentials.credentials)
    except errors.Unauthenticated:
        await blocking(count_auth_failure, client_ip(request))
        raise


def count_auth_failure(address: str | None) -> None:
    """One SQL round trip: count a failed token against its address (an IPv6 /64 counts as
    one address); `RateLimited` once over the limit. Never turns a 401 into a 503."""
    from izgens.config import get_settings
    from izgens.db import get_database

    s = get_settings()
    try:
        row = get_database().one(
            "select izgens.rate_limit('auth:ip:' || izgens.ip_bucket(%s::inet), %s, %s) as retry",
            (address, s.rate_auth_failures_ip, s.rate_window_seconds),
        )
    except errors.DatabaseUnavailable:
        log_event(logger, "auth failure not counted: no database", logging.WARNING)
        return
    retry = int(row["retry"]) if row else 0
    if retry > 0:
        raise errors.RateLimited(retry, "auth")


async def database() -> Database:
    from izgens.db import get_database

    return get_database()


CurrentUser = Annotated[User, Depends(current_user)]

Db = Annotated[Database, Depends(database)]


def client_ip(request: Request) -> str | None:
    """The caller's address, by the one rule every per-address limit and record uses.

    On Lambda, the Function URL's `sourceIp`. Behind a proxy (the container), only what a
    trusted proxy wrote, never what the client wrote itself: CLIENT_IP_HEADER when set (a
    header the proxy overwrites, Railway's X-Real-IP), else with TRUSTED_PROXY_HOPS = N
    the N-th X-Forwarded-For entry from the right (the address the outermost of N
    appending proxies saw; entries left of it are the client's own). Otherwise, or when
    that is missing, the socket peer. Always a valid IP address or None, so the SQL
    `inet` it is stored as never fails; IPv6 /64 bucketing happens in SQL (`ip_bucket`).
    """
    event = request.scope.get("aws.event")
    if isinstance(event, dict):
        source = _valid_ip(event.get("requestContext", {}).get("http", {}).get("sourceIp"))
        if source:
            return source
    from izgens.config import get_settings

    settings = get_settings()
    if settings.client_ip_header:
        given = _valid_ip(request.headers.get(settings.client_ip_header, "").strip())
        if given:
            return given
    elif settings.trusted_proxy_hops:
        # repeated headers are one list (RFC 9110 §5.3), in order
        chain = [
            entry.strip()
            for header in request.headers.getlist("x-forwarded-for")
            for entry in header.split(",")
            if entry.strip()
        ]
        if chain:
            forwarded = _valid_ip(chain[-min(settings.trusted_proxy_hops, len(chain))])
            if forwarded:
                return forwarded
    return _valid_ip(request.client.host if request.client else None)


def _valid_ip(value: object) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    import ipaddress

    try:
        address = ipaddress.ip_address(value.partition("%")[0])  # no IPv6 zone ids
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)  # one client, one bucket (not the mapped /64)
    return str(address)
