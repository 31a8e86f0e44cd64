"""The HTTP edge shared by every function: app factory, problem+json, request ids, limits.

The library raises IzgensErrors and knows nothing of HTTP; `problems` is the one place that
turns them into status codes. FastAPI's own validation and routing errors go through the same
problem+json writer, so a client only ever sees one error shape.

The files: `problems` (the error table, problem+json, the exception handlers), `edge` (the
middleware every request passes: request id, body limit, security headers, CORS, the access
log; text-safe JSON bodies), `deps` (what routes depend on: the caller, the database, the
client address, `blocking`), `app` (the app factory, the Lambda handler, SnapStart).
"""

from __future__ import annotations

from izgens.http.app import after_restore, create_app, install_snapstart_hooks, lambda_handler
from izgens.http.deps import CurrentUser, Db, blocking, client_ip, count_auth_failure
from izgens.http.edge import (
    CORS_ALLOW_HEADERS,
    CORS_ALLOW_METHODS,
    CORS_EXPOSE_HEADERS,
    CORS_MAX_AGE,
    SECURITY_HEADERS,
    EdgeMiddleware,
    TextSafeRoute,
)
from izgens.http.problems import PROBLEM_RESPONSES, problem, problem_responses

__all__ = [
    "CORS_ALLOW_HEADERS",
    "CORS_ALLOW_METHODS",
    "CORS_EXPOSE_HEADERS",
    "CORS_MAX_AGE",
    "SECURITY_HEADERS",
    "EdgeMiddleware",
    "TextSafeRoute",
    "CurrentUser",
    "Db",
    "PROBLEM_RESPONSES",
    "after_restore",
    "blocking",
    "client_ip",
    "count_auth_failure",
    "create_app",
    "install_snapstart_hooks",
    "lambda_handler",
    "problem",
    "problem_responses",
]
