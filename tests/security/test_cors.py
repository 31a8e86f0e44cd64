"""CORS is answered in one place (`izgens.http.EdgeMiddleware`) for the dev server and the
container, and the template's Function URLs (which answer it on AWS) are configured with
the very same values: a browser's preflight of every route the frontend calls passes on
all three. The container used to refuse `PATCH /account/me`'s preflight."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from izgens import http
from izgens.config import reset_settings
from tests.security.support import Operation, Stack, assert_security_headers, operations
from tests.security.test_edge import _asgi

ROOT = Path(__file__).resolve().parents[2]
ORIGIN = "https://app.izgens.test"
# the routes a browser calls: every route that needs a user (the callbacks are server to server)
# every route but the two called server to server by the providers
SERVER_TO_SERVER = {"status:POST /callbacks/byteplus", "plisio_webhook:POST /plisio/callback"}
BROWSER_ROUTES = [op for op in operations() if op.id not in SERVER_TO_SERVER]


def _requested_headers(op: Operation) -> list[str]:
    headers = ["authorization", "x-request-id"]
    if "requestBody" in op.operation:
        headers.append("content-type")
    if any(p["in"] == "header" for p in op.operation.get("parameters", [])):
        headers.append("idempotency-key")
    return headers


def _split(value: str | bytes) -> set[str]:
    text = value.decode() if isinstance(value, bytes) else value
    return {item.strip().lower() for item in text.split(",") if item.strip()}


@pytest.fixture
def apps(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh dev app and container app (each edge reads CORS_ORIGINS at its first request)."""
    from izgens.container import create_container_app
    from izgens_local.devauth import DevSigner
    from izgens_local.devserver import create_dev_app

    monkeypatch.setenv("CORS_ORIGINS", ORIGIN)
    reset_settings()
    return {
        "dev server": create_dev_app(DevSigner(f"{stack.dev.base}/auth/v1")),
        "container": create_container_app(),
    }


@pytest.mark.parametrize("where", ["dev server", "container"])
def test_the_preflight_of_every_browser_route_passes(apps: dict[str, Any], where: str) -> None:
    assert len(BROWSER_ROUTES) >= 17
    refused = []
    for op in BROWSER_ROUTES:
        requested = _requested_headers(op)
        response = _asgi(
            apps[where],
            "OPTIONS",
            op.url(),
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": op.method,
                "Access-Control-Request-Headers": ", ".join(requested),
            },
        )
        if response.status_code != 204:
            refused.append((op.id, response.status_code, response.text[:200]))
            continue
        assert response.headers["access-control-allow-origin"] == ORIGIN, op.id
        assert op.method.lower() in _split(response.headers["access-control-allow-methods"])
        assert set(requested) <= _split(response.headers["access-control-allow-headers"])
        assert response.headers["access-control-max-age"] == http.CORS_MAX_AGE.decode()
        assert_security_headers(response)
    assert refused == []


@pytest.mark.parametrize("where", ["dev server", "container"])
def test_the_answer_after_the_preflight_carries_cors_too(
    stack: Stack, apps: dict[str, Any], where: str
) -> None:
    response = _asgi(
        apps[where],
        "PATCH",
        "/account/me",
        json={"display_name": "Ada"},
        headers={**stack.auth, "Origin": ORIGIN},
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert _split(http.CORS_EXPOSE_HEADERS) == _split(
        response.headers["access-control-expose-headers"]
    )


def test_the_function_urls_allow_what_the_edge_allows() -> None:
    """On AWS the Function URL answers the preflight itself: its configuration must allow
    the same methods, headers, exposed headers and max age as the edge, for every function
    a browser calls (plisio_webhook is server to server: no CORS at all)."""
    from cfnlint.decode import decode_str

    template, problems = decode_str((ROOT / "infra" / "template.yaml").read_text())
    assert not problems
    cors = {
        resource["Properties"]["FunctionName"]["Fn::Sub"].removeprefix("${AWS::StackName}-"): (
            resource["Properties"].get("FunctionUrlConfig", {}).get("Cors")
        )
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::Serverless::Function"
    }
    assert cors["plisio_webhook"] is None
    for function in {op.function for op in BROWSER_ROUTES}:
        config = cors[function]
        assert config is not None, function
        assert config["AllowOrigins"] == [{"Ref": "FrontendOrigin"}]
        assert _split(",".join(config["AllowMethods"])) == _split(http.CORS_ALLOW_METHODS)
        assert _split(",".join(config["AllowHeaders"])) == _split(http.CORS_ALLOW_HEADERS)
        assert _split(",".join(config["ExposeHeaders"])) == _split(http.CORS_EXPOSE_HEADERS)
        assert str(config["MaxAge"]) == http.CORS_MAX_AGE.decode()
        assert "AllowCredentials" not in config
        for op in (op for op in BROWSER_ROUTES if op.function == function):
            assert op.method.lower() in _split(",".join(config["AllowMethods"])), op.id


def test_the_console_calls_only_routes_whose_preflight_is_tested() -> None:
    """The dev console is the frontend we have: each of its calls is one of BROWSER_ROUTES
    (dev-only routes aside), so the preflights above cover what a browser really sends."""
    script = (ROOT / "local" / "static" / "console.js").read_text()
    segment = r"/(?:[a-z_-]+|\$\{[A-Za-z_.]+\})"
    calls = set(re.findall(rf'api\("([A-Z]+)", [`"](/[a-z_]+(?:{segment})*)', script))
    assert len(calls) >= 15, calls
    known = [
        (op.method, re.compile("^/" + op.function + re.sub(r"\{[^}]+\}", "[^/]+", op.path) + "$"))
        for op in BROWSER_ROUTES
    ]
    for method, path in calls:
        concrete = re.sub(r"\$\{[^}]+\}", "x", path)
        if concrete.startswith("/dev/"):
            continue
        assert any(m == method and pattern.match(concrete) for m, pattern in known), (method, path)
