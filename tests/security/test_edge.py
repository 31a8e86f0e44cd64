"""The HTTP edge (izgens.http) as an attacker meets it: body limits on every route, CORS
for the configured origin only, and the process-wide clients built once under concurrency.
Client addresses: test_client_address.py; every route's preflight: test_cors.py."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from izgens.config import get_settings, reset_settings
from tests.security.support import (
    Operation,
    Stack,
    assert_security_headers,
    operations,
)
from tests.support.problems import assert_problem

OPERATIONS = operations()
OVER = get_settings().max_body_bytes + 1  # the default limit (64 KiB)


@pytest.mark.parametrize(
    "op", [op for op in OPERATIONS if op.method in ("POST", "PATCH", "PUT")], ids=lambda o: o.id
)
def test_a_body_over_the_limit_is_413_on_every_route(stack: Stack, op: Operation) -> None:
    """Declared (Content-Length): refused before any route code, with or without a token.
    Streamed (chunked, no length): refused as soon as the count passes the limit, on every
    route that reads a body (one that reads none never holds it). Nothing is written."""
    before = stack.counts()
    big = b'{"x": "' + b"a" * OVER + b'"}'

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(big), 8192):
            yield big[start : start + 8192]

    from izgens.generations import callback_token

    headers = {**stack.auth, "Content-Type": "application/json", "Idempotency-Key": "k-1"}
    reads_a_body = "requestBody" in op.operation or not op.secured  # callbacks read raw bytes
    attempts = [("declared", big)] + ([("chunked", chunks())] if reads_a_body else [])
    # the provider callback reads its body only after its token passed
    token = callback_token(uuid.uuid4(), stack.env["CALLBACK_SIGNING_KEY"])
    for how, content in attempts:
        url = f"{op.url()}?token={token}"
        response = stack.api.request(op.method, url, content=content, headers=headers)
        assert response.status_code == 413, (how, response.text)
        body = assert_problem(response, 413)
        assert body["code"] == "payload_too_large", how
        assert_security_headers(response)
    unauthenticated = stack.api.request(op.method, op.url(), content=big)
    assert_problem(unauthenticated, 413)
    assert stack.counts() == before


def test_a_content_length_that_is_not_a_number_is_400(stack: Stack) -> None:
    response = _asgi(
        _function_app("account"),
        "POST",
        "/me/age-confirmation",
        content=b"{}",
        headers={"Content-Length": "12x"},
    )
    assert_problem(response, 400)


def _asgi(
    app: Any, method: str, url: str, *, client: tuple[str, int] = ("testclient", 50000), **kw: Any
) -> httpx.Response:
    """One request straight into an ASGI app (no server; the peer can be anything)."""

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.request(method, url, **kw)

    loop = asyncio.new_event_loop()  # not asyncio.run: it unsets the thread's loop
    try:
        return loop.run_until_complete(send())
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# CORS: the container and the dev server answer it (on AWS the Function URL does)

ORIGIN = "https://app.izgens.test"


@pytest.fixture
def cors_app(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A fresh dev app (its edge reads CORS_ORIGINS at its first request) with every
    function mounted."""
    from izgens_local.devauth import DevSigner
    from izgens_local.devserver import create_dev_app

    monkeypatch.setenv("CORS_ORIGINS", f"{ORIGIN}/,https://admin.izgens.test")
    reset_settings()
    return create_dev_app(DevSigner(f"{stack.dev.base}/auth/v1"))


def test_the_configured_origin_gets_cors_headers_on_answers_and_errors(
    stack: Stack, cors_app: Any
) -> None:
    for path, headers, status in (
        ("/account/packs", stack.auth, 200),
        ("/account/packs", {}, 401),  # the frontend must be able to read the error
        ("/status/generations/not-a-uuid", stack.auth, 422),
    ):
        response = _asgi(cors_app, "GET", path, headers={**headers, "Origin": ORIGIN})
        assert response.status_code == status
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "retry-after" in response.headers["access-control-expose-headers"]
        assert "Origin" in response.headers["vary"]
        assert "access-control-allow-credentials" not in response.headers


def test_a_preflight_from_the_configured_origin_is_answered(cors_app: Any) -> None:
    response = _asgi(
        cors_app,
        "OPTIONS",
        "/generate/generations",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"]
    assert "authorization" in allowed and "idempotency-key" in allowed
    assert_security_headers(response)


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "null",
        "https://app.izgens.test.evil.example",
        "https://evil.example/https://app.izgens.test",
        "http://app.izgens.test",  # another scheme is another origin
        "https://app.izgens.test:8443",
        "https://APP.izgens.test.",
    ],
)
def test_a_foreign_origin_gets_no_cors_headers(stack: Stack, cors_app: Any, origin: str) -> None:
    actual = _asgi(cors_app, "GET", "/account/packs", headers={**stack.auth, "Origin": origin})
    assert actual.status_code == 200
    preflight = _asgi(
        cors_app,
        "OPTIONS",
        "/account/packs",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )
    assert preflight.status_code >= 400
    for response in (actual, preflight):
        assert "access-control-allow-origin" not in response.headers
        assert "access-control-allow-methods" not in response.headers


def test_without_cors_origins_there_are_no_cors_headers(stack: Stack) -> None:
    assert get_settings().cors_origins == []
    response = stack.api.get("/account/packs", headers={**stack.auth, "Origin": ORIGIN})
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("access-control-")]


# ---------------------------------------------------------------------------------------------
# Client addresses


def _function_app(name: str) -> object:
    from izgens_local.devserver import load_function

    return load_function(name).app


def test_concurrent_first_requests_build_one_provider_client(stack: Stack) -> None:
    """Each losing builder used to leak its open connections (found by the limit tests)."""
    from izgens import generations

    generations.reset_provider()
    barrier = threading.Barrier(16)
    built: list[object] = []

    def first_request() -> None:
        barrier.wait()
        built.append(generations.provider_client.get())

    threads = [threading.Thread(target=first_request) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in built}) == 1
    generations.reset_provider()


def test_an_unknown_key_id_flood_fetches_the_jwks_at_most_once(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A token naming an unknown `kid` makes the verifier refetch the signing keys; a flood
    of them must not turn into a flood of requests to Supabase Auth."""
    monkeypatch.setenv("RATE_AUTH_FAILURES_IP", "100000")
    reset_settings()
    import jwt

    fetches: list[str] = []

    real = jwt.PyJWKClient.fetch_data

    def counting(self: jwt.PyJWKClient) -> object:
        fetches.append(self.uri)
        return real(self)

    monkeypatch.setattr(jwt.PyJWKClient, "fetch_data", counting)
    assert stack.api.get("/account/me", headers=stack.auth).status_code == 200
    warm = len(fetches)
    for _ in range(30):
        token = stack.dev.token(stack.user, kid=f"kid-{uuid.uuid4().hex}")
        response = stack.api.get("/account/me", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)
    assert len(fetches) - warm <= 1


def test_pipelined_requests_each_pass_the_edge(stack: Stack) -> None:
    """HTTP/1.1 pipelining: uvicorn starts the next request's task from inside the previous
    one, which inherits its context vars. The edge used the request id var to spot a
    mounted app and skipped itself for the second request: no body limit, no security
    headers. Found by the 413 tests; the edge now marks the ASGI scope instead."""
    import socket
    from urllib.parse import urlsplit

    import h11

    target = urlsplit(stack.dev.base)
    auth = ("Authorization", stack.auth["Authorization"])
    big = b'{"over_18": true, "x": "' + b"a" * OVER + b'"}'
    requests = [
        (h11.Request(method="GET", target="/account/packs", headers=[("Host", "x"), auth]), b""),
        (
            h11.Request(
                method="POST",
                target="/account/me/age-confirmation",
                headers=[
                    ("Host", "x"),
                    auth,
                    ("Content-Type", "application/json"),
                    ("Content-Length", str(len(big))),
                ],
            ),
            big,
        ),
    ]
    # both requests on the wire before the first answer
    wire = b""
    for request, body in requests:
        head = f"{request.method.decode()} {request.target.decode()} HTTP/1.1\r\n"
        head += "".join(f"{k.decode()}: {v.decode()}\r\n" for k, v in request.headers)
        wire += head.encode() + b"\r\n" + body
    parse = h11.Connection(h11.CLIENT)
    answers: list[tuple[int, dict[str, str]]] = []
    with socket.create_connection((target.hostname, target.port), timeout=10) as sock:
        sock.sendall(wire)
        for request, body in requests:
            parse.send(request)
            if body:
                parse.send(h11.Data(data=body))
            parse.send(h11.EndOfMessage())
            status, headers = 0, {}
            while True:
                event = parse.next_event()
                if event is h11.NEED_DATA:
                    parse.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.EndOfMessage):
                    break
            answers.append((status, headers))
            parse.start_next_cycle()
    assert [status for status, _ in answers] == [200, 413]
    for _, headers in answers:
        assert headers["x-frame-options"] == "DENY" and headers["x-request-id"]
