"""Secrets stay secret: over a full flow (upload, generate to a stored video, a refused
prompt, a provider outage, buy credits through Plisio, forged tokens and callbacks, an
export, a deletion request and its cancel) no service key, API key, signing key, JWT
secret or signing key, access token or callback token appears in any log line at the
production level, in any answer (errors included), or in the user's data export."""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from izgens.generations import callback_token
from izgens.logs import configure_logging
from tests.security.support import SECRETS, Stack
from tests.support.logs import LogCapture, capture_logs
from tests.support.servers import dead_url
from tests.support.tokens import forged_tokens


@pytest.fixture
def logs() -> Iterator[LogCapture]:
    """Every record, to read as the JSON lines production would write."""
    configure_logging("INFO")  # production level; httpx's URL lines off, as in production
    with capture_logs(level=logging.INFO) as records:
        yield records


def _signing_material(stack: Stack) -> list[str]:
    """The dev ES256 private key as a JWK `d` and as PEM text."""
    from cryptography.hazmat.primitives import serialization

    key = stack.dev.signer._key  # type: ignore[attr-defined]
    d = key.private_numbers().private_value.to_bytes(32, "big")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    return [base64.urlsafe_b64encode(d).rstrip(b"=").decode(), body[20:80]]


def _answers(responses: list[httpx.Response]) -> str:
    return "\n".join(
        f"{r.status_code} {dict(r.headers)} {r.text}" for r in responses if r is not None
    )


def test_no_secret_in_logs_answers_or_exports(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, logs: LogCapture
) -> None:
    api, auth = stack.api, stack.auth
    seen: list[httpx.Response] = []

    def call(method: str, url: str, **kw: Any) -> httpx.Response:
        response = api.request(method, url, **kw)
        seen.append(response)
        return response

    def idem() -> dict[str, str]:
        return {**auth, "Idempotency-Key": uuid.uuid4().hex}

    # generate to a stored video, read it, recreate it
    call("POST", "/generate/uploads", json={"filename": "a.png", "content_type": "image/png", "bytes": 9}, headers=auth)  # fmt: skip
    gen = call("POST", "/generate/generations", json={"prompt": "a quiet harbour"}, headers=idem())
    assert gen.status_code == 202, gen.text
    gid = gen.json()["id"]
    stack.wait_for(
        lambda: stack.db.one(
            "select 1 as ok from public.generations where id = %s and status = 'completed'", (gid,)
        )
    )
    call("GET", f"/status/generations/{gid}", headers=auth)
    call("POST", f"/generate/generations/{gid}/recreate", json={"seed": 3}, headers=idem())
    call("GET", "/status/generations", headers=auth)
    # the provider refuses a prompt; the provider fails
    refused = call(
        "POST",
        "/generate/generations",
        json={"prompt": "x [sim:reject=InputTextSensitiveContentDetected]"},
        headers=idem(),
    )
    assert 400 <= refused.status_code < 500
    call("POST", "/generate/generations", json={"prompt": "y [sim:http=500]"}, headers=idem())
    # buy credits; Plisio pays and calls back (signed)
    checkout = call("POST", "/account/checkout", json={"pack_id": "starter"}, headers=idem())
    assert checkout.status_code == 201, checkout.text
    plisio = stack.env["PLISIO_BASE_URL"].removesuffix("/api/v1")
    paid = httpx.post(
        f"{plisio}/sim/pay",
        json={"order_number": checkout.json()["purchase_id"], "status": "completed"},
        timeout=30,
    )
    assert paid.status_code == 200, paid.text
    call("GET", "/account/purchases", headers=auth)
    call("GET", "/account/ledger", headers=auth)
    # forged tokens and callbacks
    for token in forged_tokens(stack.dev, stack.user).values():
        call("GET", "/account/me", headers={"Authorization": f"Bearer {token}"})
    call("POST", "/status/callbacks/byteplus?token=forged", json={"id": "cgt-x"})
    call(
        "POST",
        "/plisio_webhook/plisio/callback?json=true",
        json={"order_number": "x", "status": "completed", "verify_hash": "0" * 40},
    )
    # Plisio unreachable: the error says so without its URL's key
    monkeypatch.setenv("PLISIO_BASE_URL", f"{dead_url()}/api/v1")
    reset_settings()
    down = call("POST", "/account/checkout", json={"pack_id": "starter"}, headers=idem())
    assert down.status_code == 503, down.text
    monkeypatch.setenv("PLISIO_BASE_URL", stack.env["PLISIO_BASE_URL"])
    reset_settings()
    # an export, then a deletion request and its cancel
    export = call("POST", "/privacy_export/privacy/exports", headers=auth)
    assert export.status_code == 202, export.text
    path = f"/privacy_export/privacy/exports/{export.json()['id']}"
    ready = stack.wait_for(lambda: (r := call("GET", path, headers=auth).json())["url"] and r)
    document = httpx.get(ready["url"], timeout=30).text
    assert gid in document  # it is the user's export
    call("POST", "/privacy_export/privacy/deletion", headers=auth)
    call("DELETE", "/privacy_export/privacy/deletion", headers=auth)
    stack.sim.engine.reset()

    secrets = {
        **SECRETS,
        "the JWT signing key (d)": _signing_material(stack)[0],
        "the JWT signing key (PEM)": _signing_material(stack)[1],
        "the user's access token": stack.token,
        "a generation's callback token": callback_token(
            uuid.UUID(gid), SECRETS["CALLBACK_SIGNING_KEY"]
        ),
    }
    lines = logs.lines()
    log_text = "\n".join(lines)
    assert len(lines) > 30 and '"msg": "request"' in log_text  # we did capture
    answers = _answers(seen)
    for name, value in secrets.items():
        assert value not in log_text, f"{name} in the logs"
        assert value not in answers, f"{name} in an answer"
        assert value not in document, f"{name} in the export"
    # nor the bearer header of any request (they are credentials)
    assert "Bearer ey" not in log_text
