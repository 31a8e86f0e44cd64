"""The HTTP edge shared by every function: app factory, problem+json, request ids, limits.

The library raises IzgensErrors and knows nothing of HTTP; the table below is the one place
that turns them into status codes. FastAPI's own validation and routing errors go through
the same problem+json writer, so a client only ever sees one error shape.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from izgens import errors
from izgens.auth import User
from izgens.db import Database
from izgens.logs import configure_logging, log_event, request_id_var

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "PROBLEM_RESPONSES",
    "CurrentUser",
    "Db",
    "client_ip",
    "after_restore",
    "create_app",
    "install_snapstart_hooks",
    "lambda_handler",
    "problem",
]

logger = logging.getLogger("izgens.http")

STATUS_BY_ERROR: dict[type[errors.IzgensError], int] = {
    errors.Unauthenticated: 401,
    errors.InsufficientCredits: 402,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.IdempotencyConflict: 409,
    errors.InvalidTransition: 409,
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


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _problem_doc("Malformed request (e.g. a body that is not JSON)"),
    401: _problem_doc("Missing, expired or forged access token"),
    404: _problem_doc("Not found (also for another user's ids)"),
    405: _problem_doc("Method not allowed"),
    413: _problem_doc("Request body too large"),
    422: _problem_doc("Invalid request"),
    429: _problem_doc("Rate limited; see Retry-After"),
    503: _problem_doc("A dependency is unavailable; retry later"),
}

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
    codes = {
        404: "not_found",
        405: "method_not_allowed",
        400: "bad_request",
        413: "payload_too_large",
    }
    code = codes.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.error("unhandled error", exc_info=exc)
    return problem(500, "internal_error", "Internal error", "something went wrong on our side")


class EdgeMiddleware:
    """Request id, body size limit, security headers and one access log line per request."""

    def __init__(self, app: ASGIApp, function: str) -> None:
        self.app = app
        self.function = function
        self.max_body: int | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or request_id_var.get() is not None:
            # not HTTP, or an app mounted inside another app that already did all this
            await self.app(scope, receive, send)
            return
        if self.max_body is None:
            from izgens.config import get_settings

            settings = get_settings()
            configure_logging(settings.log_level)
            self.max_body = settings.max_body_bytes
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
        status_holder = {"status": 500}
        limit = self.max_body

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                extra = [(b"x-request-id", request_id.encode()), *SECURITY_HEADERS]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        try:
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

            await self.app(scope, limited_receive, send_with_headers)
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
    app.add_exception_handler(errors.IzgensError, _izgens_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
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


_bearer = HTTPBearer(auto_error=False, description="Supabase access token")


def current_user(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    from izgens.auth import get_verifier

    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise errors.Unauthenticated("send Authorization: Bearer <access token>")
    return get_verifier().verify(credentials.credentials)


def database() -> Database:
    from izgens.db import get_database

    return get_database()


CurrentUser = Annotated[User, Depends(current_user)]
Db = Annotated[Database, Depends(database)]


def client_ip(request: Request) -> str | None:
    """The caller's address: Lambda's sourceIp, else the socket peer (or X-Forwarded-For
    when TRUST_FORWARDED_FOR is set, for a container behind a proxy)."""
    event = request.scope.get("aws.event")
    if isinstance(event, dict):
        source = event.get("requestContext", {}).get("http", {}).get("sourceIp")
        if isinstance(source, str) and source:
            return source
    from izgens.config import get_settings

    if get_settings().trust_forwarded_for:
        forwarded = request.headers.get("x-forwarded-for", "")
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return request.client.host if request.client else None
