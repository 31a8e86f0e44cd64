"""The one check of an error answer: RFC 9457 problem+json with our stable code."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["assert_problem"]


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """The body of a problem answer with this status (and this code, when given): every
    field a client relies on is there, whatever the route."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    body = response.json()
    assert body["status"] == status and body["title"] and body["code"], body
    assert body["type"] == f"https://izgens.com/problems/{body['code']}", body
    if code is not None:
        assert body["code"] == code, body
    return body
