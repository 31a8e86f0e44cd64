"""The app factory every function uses, its Lambda handler, and what SnapStart runs after a restore."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from izgens import errors

if TYPE_CHECKING:
    pass
from izgens.http.edge import EdgeMiddleware, TextSafeRoute
from izgens.http.problems import (
    PROBLEM_RESPONSES,
    _client_disconnected,
    _http_error,
    _izgens_error,
    _unexpected_error,
    _validation_error,
)

__all__ = ["after_restore", "create_app", "install_snapstart_hooks", "lambda_handler"]

logger = logging.getLogger("izgens.http")


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
    """Every process-wide client goes (database connections, credentials, provider pools
    opened before the snapshot), and `random` is re-seeded."""
    import random

    from izgens.clients import reset_all

    reset_all()
    random.seed()
