"""The HTTP edge shared by every function: app factory, problem+json, request ids, limits.

The library raises IzgensErrors and knows nothing of HTTP; the table below is the one place
that turns them into status codes. FastAPI's own validation and routing errors go through
the same problem+json writer, so a client only ever sees one error shape.
"""

from __future__ import annotations

import contextvars
import logging
import re
import sys
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from izgens import errors
from izgens.auth import User
from izgens.db import Database
from izgens.logs import configure_logging, log_event, request_id_var

P = ParamSpec("P")
T = TypeVar("T")

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "PROBLEM_RESPONSES",
    "blocking",
    "CurrentUser",
    "Db",
    "after_restore",
    "client_ip",
    "count_auth_failure",
    "create_app",
    "install_snapstart_hooks",
    "lambda_handler",
    "problem",
    "problem_responses",
]

logger = logging.getLogger("izgens.http")

STATUS_BY_ERROR: dict[type[errors.IzgensError], int] = {
    errors.Unauthenticated: 401,
    errors.InsufficientCredits: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.IdempotencyConflict: 409,
    errors.InvalidTransition: 409,
    errors.MalformedJson: 400,
    errors.PayloadTooLarge: 413,
    errors.InvalidRequest: 422,
    errors.ProviderRejected: 422,
    errors.RateLimited: 429,
    errors.DatabaseUnavailable: 503,
    errors.ProviderUnavailable: 503,
    errors.ProviderRateLimited: 503,
    errors.ProviderError: 502,
}

PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "code"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


def _problem_doc(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
    }


_PROBLEM_DESCRIPTIONS = {
    400: "Malformed request (e.g. a body that is not JSON)",
    401: "Missing, expired or forged access token",
    402: "Not enough credits",
    403: "The account may not do this (age not confirmed, blocked, deletion pending)",
    404: "Not found (also for another user's ids)",
    405: "Method not allowed",
    409: "Conflict: Idempotency-Key reused with another body, or not possible in this state",
    413: "Request body too large",
    422: "Invalid request",
    429: "Rate limited (also repeated failed sign-ins from one address); see Retry-After",
    502: "An external service failed",
    503: "A dependency is unavailable; retry later",
}

# every route can answer these (the edge, auth and validation); add the rest per route
PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: _problem_doc(_PROBLEM_DESCRIPTIONS[status])
    for status in (400, 401, 404, 405, 413, 422, 429, 503)
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error responses one route adds to PROBLEM_RESPONSES, for its `responses=`:
    an answer the OpenAPI document does not declare is a bug the fuzz tests report."""
    return {status: _problem_doc(_PROBLEM_DESCRIPTIONS[status]) for status in statuses}


SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
]
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")


def _status_for(exc: errors.IzgensError) -> int:
    for klass in type(exc).__mro__:
        if klass in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[klass]
    return 500


def problem(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://izgens.com/problems/{code}",
        "title": title,
        "status": status,
        "code": code,
    }
    if detail:
        body["detail"] = detail
    request_id = request_id_var.get()
    if request_id:
        body["request_id"] = request_id
    if extra:
        body.update(extra)
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


async def _izgens_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.IzgensError)
    status = _status_for(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(max(1, exc.retry_after))
    elif isinstance(exc, errors.ProviderRateLimited):
        headers["Retry-After"] = str(max(1, int(exc.retry_after or 30)))
    elif isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    extra: dict[str, Any] = {}
    if isinstance(exc, errors.InsufficientCredits):
        extra = {"balance": exc.balance, "required": exc.required}
    elif isinstance(exc, errors.ProviderRejected) and exc.provider_code:
        extra = {"provider_code": exc.provider_code}
    if status >= 500:
        log_event(logger, "request failed", logging.WARNING, code=exc.code, status=status)
    return problem(status, exc.code, exc.title, exc.detail, headers=headers, extra=extra)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = exc.errors()
    if any(e.get("type") == "json_invalid" for e in problems):
        return problem(400, "invalid_json", "Malformed JSON", "the request body is not valid JSON")
    # never echo the input back: it may hold a prompt
    summary = [
        {
            "loc": [str(p) for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": e.get("type"),
        }
        for e in problems
    ]
    detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in summary)[:500]
    return problem(422, "invalid_request", "Invalid request", detail, extra={"errors": summary})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, errors.IzgensError):
        # FastAPI turns any error while reading the body into "400 error parsing the body";
        # the size limit of a body sent without Content-Length is one (413, not 400)
        return await _izgens_error(request, exc.__cause__)
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        400: "bad_request",
        413: "payload_too_large",
    }
    code = codes.get(exc.status_code, "http_error")
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    return problem(exc.status_code, code, str(exc.detail), headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (RFC 9110 §15.5.6). Starlette names only
    the first route whose path matched, so `DELETE /x` beside `POST /x` went missing."""
    from starlette.routing import Match

    methods: set[str] = set()
    for route in getattr(request.app, "routes", []):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _client_disconnected(request: Request, exc: Exception) -> JSONResponse:
    """The client hung up before its body was read: nothing was done, nobody is waiting for
    the answer (the access line records a 400), and it is no error of ours."""
    log_event(logger, "client disconnected before sending its body")
    return problem(400, "client_disconnected", "The client disconnected", "the body was cut short")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "something went wrong on our side")


# What browsers may send and read, for every route (infra/template.yaml repeats these for
# the Function URLs; tests/infra checks they agree)
CORS_ALLOW_METHODS = b"GET, POST, PATCH, DELETE"
CORS_ALLOW_HEADERS = b"authorization, content-type, idempotency-key, x-request-id"
CORS_EXPOSE_HEADERS = b"retry-after, x-request-id"
CORS_MAX_AGE = b"600"


_EDGE_DONE = "izgens.edge"
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class TextSafeRequest(Request):
    """A request whose JSON body holds only text every layer can take: no NUL (Postgres
    text and jsonb refuse it) and no unpaired surrogate (JSON may escape one, UTF-8 cannot
    encode it). Refused as `invalid_request` before any route code runs."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            _check_text(await super().json())
        return self._json


def _check_text(document: Any) -> None:
    pending = [document]
    while pending:  # iterative: nesting depth costs no stack
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                raise errors.InvalidRequest(
                    "text must not contain NUL characters or unpaired UTF-16 surrogates"
                )
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


class TextSafeRoute(APIRoute):
    """Every route of our apps reads its JSON body through TextSafeRequest."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def text_safe(request: Request) -> Response:
            return await handler(TextSafeRequest(request.scope, request.receive, request._send))

        return text_safe


class EdgeMiddleware:
    """Request id, body size limit, security headers, CORS (when CORS_ORIGINS is set) and
    one access log line per request; also for errors no handler caught (500).

    The one CORS implementation of the container and the dev server (on AWS the Function
    URLs answer it, configured with the same CORS_* values in infra/template.yaml)."""

    def __init__(self, app: ASGIApp, function: str) -> None:
        self.app = app
        self.function = function
        self.max_body: int | None = None
        self.cors_origins: frozenset[str] = frozenset()

    def _configure(self) -> int:
        """Settings are read at the first request, never at import."""
        from izgens.config import get_settings

        settings = get_settings()
        configure_logging(settings.log_level)
        # On AWS the Function URL answers CORS and CORS_ORIGINS stays empty; the container
        # and the dev server answer it here.
        self.cors_origins = frozenset(o.rstrip("/").lower() for o in settings.cors_origins)
        self.max_body = settings.max_body_bytes
        return self.max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.max_body = None  # a (re)started server reads the settings again
        if scope["type"] != "http" or scope.get(_EDGE_DONE):
            # not HTTP, or an app mounted inside another app that already did all this.
            # Marked in the scope, not told by the request id var: a server may start a
            # pipelined request from inside the previous one, context vars and all.
            await self.app(scope, receive, send)
            return
        scope = {**scope, _EDGE_DONE: True}
        inline = _inline_blocking.set("aws.event" in scope)
        limit = self.max_body if self.max_body is not None else self._configure()
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        context = scope.get("aws.context")
        request_id = (
            given
            if _REQUEST_ID.match(given)
            else getattr(context, "aws_request_id", None) or uuid.uuid4().hex
        )
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "started": False}
        edge_headers = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
        cors_origin = self._cors_origin(headers)
        if self.cors_origins:
            edge_headers.append((b"vary", b"Origin"))
        if cors_origin is not None:
            edge_headers += [
                (b"access-control-allow-origin", cors_origin),
                (b"access-control-expose-headers", CORS_EXPOSE_HEADERS),
            ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                message["headers"] = list(message.get("headers", [])) + edge_headers
            await send(message)

        try:
            if cors_origin is not None and _is_preflight(scope, headers):
                await _preflight(send_with_headers)
                return
            length = headers.get(b"content-length", b"0").decode("latin-1")
            if not length.isdigit() or int(length) > limit:
                too_big = errors.PayloadTooLarge(f"request bodies are limited to {limit} bytes")
                bad = problem(413, too_big.code, too_big.title, too_big.detail)
                if not length.isdigit():
                    bad = problem(400, "bad_request", "Invalid Content-Length")
                await bad(scope, receive, send_with_headers)
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        raise errors.PayloadTooLarge(f"request bodies are limited to {limit} bytes")
                return message

            try:
                await self.app(scope, limited_receive, send_with_headers)
            except Exception as exc:
                # Starlette answers these outside every middleware (no request id, no
                # security headers); answer here instead, once, if nothing was sent yet
                if status_holder["started"]:
                    raise
                logger.error("unhandled error", exc_info=exc)
                failed = problem(
                    500, "internal_error", "Internal error", "something went wrong on our side"
                )
                await failed(scope, receive, send_with_headers)
        finally:
            log_event(
                logger,
                "request",
                function=self.function,
                method=scope.get("method"),
                path=scope.get("path"),
                status=status_holder["status"],
                duration_ms=round((time.perf_counter() - started) * 1000, 1),
            )
            request_id_var.reset(token)
            _inline_blocking.reset(inline)

    def _cors_origin(self, headers: dict[bytes, bytes]) -> bytes | None:
        """The request's Origin when it is one of CORS_ORIGINS (exactly), else None."""
        origin = headers.get(b"origin")
        if not origin or not self.cors_origins:
            return None
        if origin.decode("latin-1").rstrip("/").lower() not in self.cors_origins:
            return None
        return origin


def _is_preflight(scope: Scope, headers: dict[bytes, bytes]) -> bool:
    return scope.get("method") == "OPTIONS" and b"access-control-request-method" in headers


async def _preflight(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-methods", CORS_ALLOW_METHODS),
                (b"access-control-allow-headers", CORS_ALLOW_HEADERS),
                (b"access-control-max-age", CORS_MAX_AGE),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def create_app(function: str, *, title: str, description: str = "") -> FastAPI:
    app = FastAPI(
        title=title,
        description=description,
        version="1",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        responses=PROBLEM_RESPONSES,
    )
    app.router.route_class = TextSafeRoute
    app.add_exception_handler(errors.IzgensError, _izgens_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected_error)
    app.add_middleware(EdgeMiddleware, function=function)
    return app


def lambda_handler(app: FastAPI) -> Any:
    """The Lambda entry point for an HTTP function (Function URL payload v2)."""
    from mangum import Mangum

    install_snapstart_hooks()
    # text, so Function URLs get problem+json as is instead of base64
    return Mangum(app, lifespan="off", text_mime_types=["application/problem+json"])


def install_snapstart_hooks() -> None:
    """With Lambda SnapStart one memory snapshot serves many containers: after a restore,
    drop connections opened before the snapshot and re-seed `random` (ids come from
    os.urandom, which the runtime re-seeds itself). Outside Lambda this does nothing."""
    try:
        from snapshot_restore_py import register_after_restore  # Lambda's Python runtime only
    except ImportError:
        return
    register_after_restore(after_restore)


def after_restore() -> None:
    import random

    from izgens.db import reset_database

    reset_database()
    random.seed()
    generations = sys.modules.get("izgens.generations")
    if generations is not None:
        generations.reset_provider()
    storage = sys.modules.get("izgens.storage")
    if storage is not None:
        storage.reset_credentials()


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
