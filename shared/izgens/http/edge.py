"""What every request passes through before a route: request id, body size limit, security headers, CORS (the one implementation, for the dev server and the container), the access log; and JSON bodies that only hold text every layer can store."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import TYPE_CHECKING, Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from izgens import errors
from izgens.logs import configure_logging, log_event, request_id_var

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from starlette.types import ASGIApp, Message, Receive, Scope, Send
from izgens.http.deps import _inline_blocking
from izgens.http.problems import problem

logger = logging.getLogger("izgens.http")

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_ALLOW_METHODS",
    "CORS_EXPOSE_HEADERS",
    "CORS_MAX_AGE",
    "SECURITY_HEADERS",
    "EdgeMiddleware",
    "TextSafeRoute",
]

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
]

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

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
