"""One rule for the client address (`izgens.http.client_ip`), used by every per-address
limit and record: behind a proxy only what the trusted proxy wrote counts, never what the
client wrote itself. Both proxy shapes are tested through real routes: a header the proxy
overwrites (CLIENT_IP_HEADER, Railway's X-Real-IP) and proxies that append to
X-Forwarded-For (TRUSTED_PROXY_HOPS). Addresses that are not addresses are dropped."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from izgens.config import Settings, reset_settings
from tests.events import load
from tests.security.support import Stack
from tests.security.test_edge import _asgi, _function_app
from tests.support.problems import assert_problem

PEER = "10.9.8.7"  # the proxy, as the socket peer


def _configure(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for name in ("CLIENT_IP_HEADER", "TRUSTED_PROXY_HOPS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    reset_settings()


def _generate(stack: Stack, headers: dict[str, str], *, peer: str = PEER) -> httpx.Response:
    return _asgi(
        _function_app("generate"),
        "POST",
        "/generations",
        json={"prompt": "a lighthouse at dusk"},
        headers={**stack.auth, "Idempotency-Key": uuid.uuid4().hex, **headers},
        client=(peer, 40000),
    )


def _stored_address(stack: Stack, response: httpx.Response) -> str | None:
    assert response.status_code == 202, response.text
    row = stack.db.one(
        "select host(client_ip) as ip from public.generations where id = %s",
        (response.json()["id"],),
    )
    assert row is not None
    return row["ip"]


@pytest.mark.parametrize(
    ("env", "headers", "expected"),
    [
        # no proxy configured: the socket peer, whatever the headers say
        ({}, {"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "7.7.7.7"}, PEER),
        # one appending proxy: its entry is the last one; the client's own come before it
        ({"TRUSTED_PROXY_HOPS": "1"}, {"X-Forwarded-For": "203.0.113.5"}, "203.0.113.5"),
        (
            {"TRUSTED_PROXY_HOPS": "1"},
            {"X-Forwarded-For": "6.6.6.6, 7.7.7.7, 203.0.113.5"},
            "203.0.113.5",
        ),
        # two: a CDN then the platform's proxy, each appending
        (
            {"TRUSTED_PROXY_HOPS": "2"},
            {"X-Forwarded-For": "6.6.6.6, 203.0.113.6, 198.51.100.1"},
            "203.0.113.6",
        ),
        # fewer entries than hops: every entry was written by a proxy; the outermost one's
        ({"TRUSTED_PROXY_HOPS": "3"}, {"X-Forwarded-For": "203.0.113.7"}, "203.0.113.7"),
        # no header at all: the request did not come through the proxy
        ({"TRUSTED_PROXY_HOPS": "1"}, {}, PEER),
        # a header the proxy overwrites (Railway: X-Real-IP); X-Forwarded-For is ignored
        (
            {"CLIENT_IP_HEADER": "X-Real-IP"},
            {"X-Real-IP": "203.0.113.8", "X-Forwarded-For": "6.6.6.6"},
            "203.0.113.8",
        ),
        ({"CLIENT_IP_HEADER": "X-Real-IP"}, {"X-Forwarded-For": "6.6.6.6"}, PEER),
        # IPv4-mapped IPv6 is its IPv4 address
        ({"CLIENT_IP_HEADER": "X-Real-IP"}, {"X-Real-IP": "::ffff:203.0.113.9"}, "203.0.113.9"),
    ],
    ids=[
        "no proxy",
        "one hop",
        "one hop, client-written entries",
        "two hops",
        "fewer entries than hops",
        "one hop, no header",
        "overwritten header",
        "overwritten header missing",
        "mapped ipv4",
    ],
)
def test_the_address_is_the_one_the_trusted_proxy_wrote(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    headers: dict[str, str],
    expected: str,
) -> None:
    _configure(monkeypatch, **env)
    assert _stored_address(stack, _generate(stack, headers)) == expected


def test_repeated_forwarded_for_headers_are_one_list(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client's own X-Forwarded-For header and the proxy's appended one (RFC 9110 §5.3:
    one field, in order): the proxy's is still the last entry."""
    _configure(monkeypatch, TRUSTED_PROXY_HOPS="1")
    response = _asgi(
        _function_app("generate"),
        "POST",
        "/generations",
        json={"prompt": "a lighthouse at dusk"},
        headers=[
            ("Authorization", stack.auth["Authorization"]),
            ("Idempotency-Key", uuid.uuid4().hex),
            ("X-Forwarded-For", "6.6.6.6"),
            ("X-Forwarded-For", "203.0.113.10"),
        ],
        client=(PEER, 40000),
    )
    assert _stored_address(stack, response) == "203.0.113.10"


def test_lambda_source_ip_wins_over_any_header(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from starlette.requests import Request

    from izgens.http import client_ip

    _configure(monkeypatch, CLIENT_IP_HEADER="X-Real-IP")
    scope: dict[str, Any] = {
        "type": "http",
        "headers": [(b"x-real-ip", b"6.6.6.6")],
        "client": (PEER, 1),
        "aws.event": load("function_url", source_ip="203.0.113.11"),
    }
    assert client_ip(Request(scope)) == "203.0.113.11"


@pytest.mark.parametrize(
    ("env", "header"),
    [
        ({"TRUSTED_PROXY_HOPS": "1"}, "X-Forwarded-For"),
        ({"CLIENT_IP_HEADER": "X-Real-IP"}, "X-Real-IP"),
    ],
    ids=["appending proxy", "overwriting proxy"],
)
def test_a_client_cannot_rotate_around_a_per_address_limit(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], header: str
) -> None:
    """The attack the leftmost-entry rule allowed: a fresh forged X-Forwarded-For (and
    X-Real-IP) on every request. The proxy's address for the client stays the same, and so
    does the bucket."""
    _configure(monkeypatch, RATE_UPLOAD_IP="3", RATE_UPLOAD_USER="1000", **env)
    statuses = []
    for i in range(6):
        forged = f"198.18.0.{i + 1}"
        headers = {
            "X-Forwarded-For": f"{forged}, 203.0.113.12" if header == "X-Forwarded-For" else forged,
        }
        if header == "X-Real-IP":
            headers["X-Real-IP"] = "203.0.113.12"
        response = _asgi(
            _function_app("generate"),
            "POST",
            "/uploads",
            json={"filename": "a.png", "content_type": "image/png", "bytes": 1000},
            headers={**stack.auth, **headers},
            client=(PEER, 40000),
        )
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert_problem(response, 429)
    assert statuses == [201, 201, 201, 429, 429, 429]
    rows = stack.db.all(
        "select bucket, hits from public.rate_limits where bucket like 'upload:ip:%'"
    )
    assert rows == [{"bucket": "upload:ip:203.0.113.12", "hits": 3}]


ACTIONS = {
    "generate": ("generate", "POST", "/generations", {"prompt": "a kite over a beach"}, 202),
    "upload": (
        "generate",
        "POST",
        "/uploads",
        {"filename": "a.png", "content_type": "image/png", "bytes": 1000},
        201,
    ),
    "checkout": ("account", "POST", "/checkout", {"pack_id": "starter"}, 201),
    "export": ("privacy_export", "POST", "/privacy/exports", None, 202),
}


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("given", ["not-an-ip", "1.2.3.4.5", "fe80::1%eth0", "", "::ffff:x"])
@pytest.mark.parametrize("env", [{"TRUSTED_PROXY_HOPS": "1"}, {"CLIENT_IP_HEADER": "X-Real-IP"}])
def test_a_client_address_that_is_not_an_ip_is_dropped_not_fatal(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, action: str, given: str, env: dict[str, str]
) -> None:
    """Stored as SQL inet (and bucketed by it), a value that is not an address was a 500:
    it falls back to the peer, which the ASGI test client gives as 'testclient' (no
    address at all)."""
    _configure(monkeypatch, **env)
    function, method, path, body, status = ACTIONS[action]
    response = _asgi(
        _function_app(function),
        method,
        path,
        json=body,
        headers={
            **stack.auth,
            "Idempotency-Key": uuid.uuid4().hex,
            "X-Forwarded-For": given,
            "X-Real-IP": given,
        },
    )
    assert response.status_code == status, response.text
    addresses = stack.db.all(
        "select client_ip from public.generations union all select client_ip from public.purchases"
    )
    assert all(row["client_ip"] is None or str(row["client_ip"]) == "fe80::1" for row in addresses)


def test_the_old_setting_is_refused_at_start() -> None:
    """TRUST_FORWARDED_FOR took the leftmost entry; left in a deployment it would now be
    ignored in silence, so it stops the start with a pointer to its replacements."""
    with pytest.raises(ValueError, match="CLIENT_IP_HEADER or TRUSTED_PROXY_HOPS"):
        Settings.from_environ({"TRUST_FORWARDED_FOR": "true"})
    with pytest.raises(ValueError):
        Settings.from_environ({"CLIENT_IP_HEADER": "X-Real-IP: 1.2.3.4"})
