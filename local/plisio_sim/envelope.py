"""Plisio's answer envelope, `{"status": "success" | "error", "data": ...}`, and the
error codes the simulator answers with."""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

CODE_VALIDATION = 104  # the simulator's choice; Plisio publishes no table
CODE_UNSUPPORTED_CURRENCY = 105  # documented (§1)
CODE_DUPLICATE_ORDER = 106  # the simulator's choice


def envelope_error(http_status: int, name: str, message: str, code: int) -> JSONResponse:
    body = {"status": "error", "data": {"name": name, "message": message, "code": code}}
    return JSONResponse(body, status_code=http_status)


def invalid(message: dict[str, str] | str, code: int = CODE_VALIDATION) -> JSONResponse:
    text = message if isinstance(message, str) else json.dumps(message)
    return envelope_error(422, "Unprocessable entity", text, code)


def success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


async def api_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    name = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return envelope_error(status, name, name, 0)
