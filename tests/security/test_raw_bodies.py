"""The two routes that read raw bytes (they verify bytes, so pydantic never sees them):
`POST /plisio_webhook/plisio/callback` and `POST /status/callbacks/byteplus` answer every
body with 2xx or a 4xx problem+json, never 5xx, and a malformed one is one log line, not an
error with a traceback; a refused body stores, credits and refunds nothing. The provider
callback checks its token before it reads a byte of the body. Arbitrary bytes and JSON of
any depth: tests/fuzz/test_fuzz_raw_bodies.py."""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from izgens.db import get_database
from izgens.generations import callback_token
from izgens.logs import configure_logging
from tests.payments.support import callback_body, new_purchase, sign
from tests.security.support import SECRETS, Stack
from tests.support.logs import LogCapture, capture_logs
from tests.support.problems import assert_problem

PLISIO = "/plisio_webhook/plisio/callback?json=true"
BYTEPLUS = "/status/callbacks/byteplus"

# every kind of body that is not a usable JSON object, by what is wrong with it
MALFORMED: dict[str, bytes] = {
    "empty": b"",
    "whitespace": b" \r\n\t ",
    "deep arrays (3 KB)": b"[" * 1500 + b"]" * 1500,
    "deep objects": b'{"a":' * 1200 + b"1" + b"}" * 1200,
    "deep arrays, unclosed": b"[" * 3000,
    "deep inside an object": b'{"id":"cgt-1","x":' + b"[" * 60 + b"]" * 60 + b"}",
    "not utf-8": b'{"id": "cgt-\xff\xfe"}',
    "utf-16": '{"id": "cgt-1"}'.encode("utf-16"),
    "utf-8 bom": b'\xef\xbb\xbf{"id": "cgt-1"}',
    "truncated": b'{"id": "cgt-',
    "trailing garbage": b'{"id": "cgt-1"} {"id": "cgt-2"}',
    "a 5000-digit number": b'{"id": ' + b"9" * 5000 + b"}",
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "1e400": b"1e400",
    "id is NaN": b'{"id": NaN}',
    "id is 1e400": b'{"id": 1e400}',
    "top-level array": b'["cgt-1"]',
    "top-level string": b'"cgt-1"',
    "null": b"null",
    "form encoded": b"id=cgt-1&status=succeeded",
    "xml": b"<task><id>cgt-1</id></task>",
    "nul in the id": b'{"id": "cgt-\\u0000"}',
    "lone surrogate in the id": b'{"id": "cgt-\\ud800"}',
    "id with a path": b'{"id": "../../v3/contents/generations/tasks"}',
    "id too long": b'{"id": "' + b"c" * 201 + b'"}',
    "binary": bytes(range(256)),
}
CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    None,
]


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every log record of the process (the dev server's threads included)."""
    configure_logging()  # it replaces the root's handlers once; add ours after that
    with capture_logs() as records:
        yield records


@pytest.fixture
def running(stack: Stack) -> dict[str, Any]:
    """A generation the provider is working on, and its valid callback token."""
    row = stack.running_generation()
    token = callback_token(row["id"], SECRETS["CALLBACK_SIGNING_KEY"])
    return {"id": row["id"], "task": row["provider_task_id"], "token": token}


def _generation(stack: Stack, gid: uuid.UUID) -> dict[str, Any]:
    row = stack.db.one("select * from public.generations where id = %s", (gid,))
    assert row is not None
    return {k: v for k, v in row.items() if k not in ("checked_at", "updated_at")}


def _post(stack: Stack, url: str, body: bytes, content_type: str | None) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return stack.api.post(url, content=body, headers=headers)


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_malformed_body_is_4xx_on_the_plisio_webhook(
    stack: Stack, logs: LogCapture, content_type: str | None
) -> None:
    before, trips = stack.counts(), get_database().round_trips
    for why, body in MALFORMED.items():
        logs.clear()
        response = _post(stack, PLISIO, body, content_type)
        problem = assert_problem(response, 422)
        assert problem["code"] == "invalid_signature", why
        assert logs.errors() == [], why
        refusals = [r for r in logs.records if r.getMessage() == "plisio callback refused"]
        assert len(refusals) == 1 and refusals[0].levelno == logging.WARNING, why
    assert stack.counts() == before
    assert get_database().round_trips == trips  # not even a read


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_every_malformed_body_is_4xx_on_the_provider_callback(
    stack: Stack, logs: LogCapture, running: dict[str, Any], content_type: str | None
) -> None:
    before, row = stack.counts(), _generation(stack, running["id"])
    url = f"{BYTEPLUS}?token={running['token']}"
    for why, body in MALFORMED.items():
        logs.clear()
        response = _post(stack, url, body, content_type)
        assert response.status_code in (400, 422), (why, response.status_code, response.text)
        assert_problem(response, response.status_code)
        assert logs.errors() == [], why
    assert stack.counts() == before
    assert _generation(stack, running["id"]) == row


def test_the_provider_callback_checks_its_token_before_reading_the_body(
    stack: Stack, running: dict[str, Any]
) -> None:
    """A forged token is 401 whatever follows, even a body that never comes: the answer
    is sent after the headers alone (the old route waited for the body, then parsed it)."""
    forged = callback_token(running["id"], "not-the-signing-key-000000000000")
    for body in (MALFORMED["deep arrays (3 KB)"], MALFORMED["not utf-8"], b""):
        assert_problem(_post(stack, f"{BYTEPLUS}?token={forged}", body, "application/json"), 401)
    status, _ = _raw_exchange(stack, f"{BYTEPLUS}?token={forged}", b"", declared=10_000, wait=5)
    assert status == 401


def test_a_valid_hint_with_odd_numbers_elsewhere_still_works(
    stack: Stack, running: dict[str, Any]
) -> None:
    """The body is a hint: only its `id` is read (the task is re-read from the API)."""
    body = b'{"id": "%s", "status": "succeeded", "x": NaN, "y": 1e400}' % running["task"].encode()
    response = _post(stack, f"{BYTEPLUS}?token={running['token']}", body, "text/plain")
    assert response.status_code == 200, response.text
    assert _generation(stack, running["id"])["status"] in ("submitted", "running")


# ---------------------------------------------------------------------------------------------
# Bodies cut short


def _raw_exchange(
    stack: Stack, target: str, sent: bytes, *, declared: int, wait: float, hang_up: bool = False
) -> tuple[int | None, bytes]:
    """Send the head (declaring `declared` bytes) and `sent`; then hang up, or wait up to
    `wait` s for an answer. (status or None, what came back)."""
    base = urlsplit(stack.dev.base)
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {base.hostname}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection((base.hostname, base.port), timeout=wait) as sock:
        sock.sendall(head + sent)
        if hang_up:
            return None, b""
        try:
            answer = sock.recv(65536)
        except TimeoutError:
            return None, b""
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, answer


@pytest.mark.parametrize("route", ["plisio", "byteplus"])
def test_a_body_cut_short_by_a_client_that_hangs_up_is_a_400_not_an_error(
    stack: Stack, logs: LogCapture, running: dict[str, Any], route: str
) -> None:
    target = PLISIO if route == "plisio" else f"{BYTEPLUS}?token={running['token']}"
    path = urlsplit(target).path
    before = stack.counts()
    logs.clear()
    _raw_exchange(stack, target, b'{"id": "cgt-', declared=5000, wait=5, hang_up=True)

    def logged() -> list[logging.LogRecord]:
        return [
            r
            for r in logs.records
            if r.getMessage() == "request" and getattr(r, "fields", {}).get("path") == path
        ]

    (line,) = stack.wait_for(logged)
    assert line.fields["status"] == 400  # type: ignore[attr-defined]
    assert logs.errors() == []
    assert any(
        r.getMessage() == "client disconnected before sending its body" for r in logs.records
    )
    time.sleep(0.2)  # nothing else arrives late
    assert logs.errors() == [] and stack.counts() == before


# ---------------------------------------------------------------------------------------------
# Signed callbacks with numbers jsonb cannot hold: stored, never lost


def _signed(fields: dict[str, Any], raw_numbers: dict[str, str]) -> bytes:
    """A callback signed the way verify_callback checks it, with some values written as
    raw JSON number text (NaN, Infinity, 1e400) in place of strings."""
    parsed = {k: json.loads(v) for k, v in raw_numbers.items()}  # what a parser reads
    signature = sign({**fields, **parsed})
    text = json.dumps({**fields, **{k: f"@@{k}@@" for k in raw_numbers}}, separators=(",", ":"))
    for key, raw in raw_numbers.items():
        text = text.replace(f'"@@{key}@@"', raw)
    return text[:-1].encode() + b',"verify_hash":"' + signature.encode() + b'"}'


@pytest.mark.parametrize(
    ("numbers", "flag"),
    [
        ({"amount": "NaN"}, None),
        ({"amount": "Infinity", "pending_amount": "-Infinity"}, None),
        ({"amount": "1e400"}, None),
        ({"source_amount": "NaN"}, "amount_mismatch"),
    ],
    ids=["NaN", "Infinity", "1e400", "NaN price"],
)
def test_a_signed_callback_with_non_finite_numbers_is_stored_once(
    stack: Stack, logs: LogCapture, numbers: dict[str, str], flag: str | None
) -> None:
    pid = new_purchase(stack.db, stack.user)
    fields = {
        k: v
        for k, v in json.loads(callback_body(str(pid), "pending")).items()
        if k != "verify_hash" and k not in numbers
    }
    body = _signed(fields, numbers)
    first = _post(stack, PLISIO, body, "application/json")
    assert first.status_code == 200, first.text
    assert _post(stack, PLISIO, body, "application/json").status_code == 200  # a replay
    (event,) = stack.db.all("select * from public.payment_events where purchase_id = %s", (pid,))
    for key, raw in numbers.items():
        assert event["payload"][key] == json.dumps(json.loads(raw))  # the text, e.g. "NaN"
    assert event["flagged"] == flag
    row = stack.db.one("select * from public.purchases where id = %s", (pid,))
    assert row is not None and row["credited_at"] is None and row["paid_amount"] is None
    assert logs.errors() == []


def test_a_signed_callback_nested_too_deep_is_refused_and_stores_nothing(stack: Stack) -> None:
    pid = new_purchase(stack.db, stack.user)
    fields = json.loads(callback_body(str(pid), "completed"))
    del fields["verify_hash"]
    nested: Any = "deep"
    for _ in range(40):
        nested = [nested]
    fields["comment"] = nested
    fields["verify_hash"] = sign(fields)
    response = _post(stack, PLISIO, json.dumps(fields).encode(), "application/json")
    assert_problem(response, 422)
    assert stack.db.all("select 1 from public.payment_events") == []
    row = stack.db.one("select status, credited_at from public.purchases where id = %s", (pid,))
    assert row == {"status": "pending", "credited_at": None}


def test_a_signed_callback_with_text_jsonb_cannot_hold_is_stored(stack: Stack) -> None:
    """NUL and an unpaired surrogate in a signed field (verify_hash covers them): kept as
    U+FFFD, not lost to a database error."""
    pid = new_purchase(stack.db, stack.user)
    fields = json.loads(callback_body(str(pid), "pending"))
    del fields["verify_hash"]
    fields["comment"] = "a\x00b\ud800c"
    fields["verify_hash"] = sign(fields)
    response = _post(stack, PLISIO, json.dumps(fields).encode(), "application/json")
    assert response.status_code == 200, response.text
    (event,) = stack.db.all("select payload from public.payment_events")
    assert event["payload"]["comment"] == "a\ufffdb\ufffdc"
