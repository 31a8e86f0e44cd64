"""Errors as problem+json (RFC 9457): the one table from IzgensError to status and code, the OpenAPI documents of the answers, and the app's exception handlers."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from izgens import errors
from izgens.logs import log_event, request_id_var

if TYPE_CHECKING:
    pass

logger = logging.getLogger("izgens.http")

__all__ = ["PROBLEM_RESPONSES", "problem", "problem_responses"]

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
