"""Every route of every function, enumerated from the functions' own OpenAPI documents (a
new route is covered the day it is added): forged tokens refused, another user's ids not
found, security headers on every answer, errors as problem+json."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from tests.events import load
from tests.security.support import (
    Operation,
    Stack,
    assert_security_headers,
    operations,
)
from tests.support.problems import assert_problem
from tests.support.tokens import forged_tokens

OPERATIONS = operations()

# Routes without a user token: the two callbacks, each with its own proof of origin (and
# tests for it): the per-generation signed callback token, Plisio's verify_hash; and the
# model catalog, which reads nothing but the code's own constants.
PUBLIC = {
    "status:POST /callbacks/byteplus",  # tests/generation/test_generation_security.py
    "plisio_webhook:POST /plisio/callback",  # tests/payments/test_payment_events.py
    "generate:GET /models",  # tests/generation/test_pricing.py
}


def _body(op: Operation) -> dict[str, Any] | None:
    """A JSON object for routes that take one (its content does not matter here)."""
    return {} if "requestBody" in op.operation else None


def test_every_route_needs_a_user_token_except_the_signed_callbacks() -> None:
    secured = {op.id for op in OPERATIONS if op.secured}
    public = {op.id for op in OPERATIONS if not op.secured}
    assert public == PUBLIC, "a new route without a user token: review it, then list it here"
    assert len(secured) >= 17


@pytest.mark.parametrize("op", [op for op in OPERATIONS if op.secured], ids=lambda op: op.id)
def test_forged_expired_and_wrong_audience_tokens_are_refused_and_write_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, op: Operation
) -> None:
    monkeypatch.setenv("RATE_AUTH_FAILURES_IP", "100000")
    reset_settings()
    before = stack.counts()
    for why, token in forged_tokens(stack.dev, stack.user).items():
        response = stack.api.request(
            op.method,
            op.url(),
            json=_body(op),
            headers={"Authorization": f"Bearer {token}", "Idempotency-Key": uuid.uuid4().hex},
        )
        body = assert_problem(response, 401)
        assert body["code"] == "unauthenticated", why
        assert response.headers["www-authenticate"] == "Bearer", why
        assert token not in response.text, why
        assert_security_headers(response)
    after = stack.counts()
    assert after["rate_limits"] >= before["rate_limits"]  # the failures were counted…
    del after["rate_limits"], before["rate_limits"]
    assert after == before  # …and nothing else was written


def test_a_valid_token_passes_the_same_gate(stack: Stack) -> None:
    """The forged tokens differ from a working one in one thing each."""
    assert stack.api.get("/account/me", headers=stack.auth).status_code == 200


# ---------------------------------------------------------------------------------------------
# Other users' ids


def _own(stack: Stack, param: str, owner_auth: dict[str, str], owner: uuid.UUID) -> str:
    """A real object of `owner` for a path parameter."""
    if param == "generation_id":
        return stack.completed_generation(owner_auth)
    if param == "export_id":
        response = stack.api.post("/privacy_export/privacy/exports", headers=owner_auth)
        assert response.status_code == 202, response.text
        export = response.json()["id"]
        stack.wait_for(  # built in the background: settled before the snapshot
            lambda: stack.db.one(
                "select 1 as done from public.data_exports where id = %s and status = 'ready'",
                (export,),
            )
        )
        return export
    if param == "purchase_id":
        row = stack.db.one(
            "insert into public.purchases (user_id, pack_id, credits, amount, currency, status)"
            " values (%s, 'starter', 500, 5.00, 'USD', 'pending') returning id",
            (owner,),
        )
        assert row is not None
        return str(row["id"])
    raise AssertionError(f"no owned object for path parameter {param!r}: add one here")


def _snapshot(stack: Stack) -> dict[str, Any]:
    rows = {}
    for table in ("generations", "data_exports", "purchases", "deletion_requests", "profiles"):
        rows[table] = stack.db.all(f"select * from public.{table} order by 1")
    return rows


ID_ROUTES = [op for op in OPERATIONS if op.path_params]


@pytest.mark.parametrize("op", ID_ROUTES, ids=lambda op: op.id)
def test_another_users_id_is_not_found_never_forbidden(stack: Stack, op: Operation) -> None:
    """404 exactly as for an id that does not exist (no 403 that would confirm it does), and
    nothing of the owner's changes."""
    owner, owner_token = stack.new_user()
    owner_auth = {"Authorization": f"Bearer {owner_token}"}
    ids = {p: _own(stack, p, owner_auth, owner) for p in op.path_params}
    before = _snapshot(stack)
    headers = {**stack.auth, "Idempotency-Key": uuid.uuid4().hex}
    theirs = stack.api.request(op.method, op.url(**ids), json=_body(op), headers=headers)
    missing = stack.api.request(op.method, op.url(), json=_body(op), headers=headers)
    for response in (theirs, missing):
        body = assert_problem(response, 404)
        assert body["code"] == "not_found"
        assert_security_headers(response)
    # the same words for both: nothing tells an existing id from a made-up one
    assert theirs.json()["detail"] == missing.json()["detail"]
    assert _snapshot(stack) == before
    if op.method == "GET":  # the id is real: its owner gets it
        mine = stack.api.get(op.url(**ids), headers=owner_auth)
        assert mine.status_code == 200, mine.text


def test_every_route_with_an_id_is_covered() -> None:
    assert {p for op in ID_ROUTES for p in op.path_params} <= {
        "generation_id",
        "export_id",
        "purchase_id",
    }
    assert len(ID_ROUTES) >= 4


# ---------------------------------------------------------------------------------------------
# Headers on every answer, errors as problem+json


@pytest.mark.parametrize("function", sorted({op.function for op in OPERATIONS}))
def test_security_headers_on_success_errors_and_unknown_paths(stack: Stack, function: str) -> None:
    answers = {
        "unknown path": stack.api.get(f"/{function}/no/such/route", headers=stack.auth),
        "no token": stack.api.get(f"/{function}/openapi.json/x"),
        "openapi": stack.api.get(f"/{function}/openapi.json"),
    }
    for op in (o for o in OPERATIONS if o.function == function):
        answers[f"{op.id} without token"] = stack.api.request(op.method, op.url(), json=_body(op))
        other = "PUT" if op.method != "PUT" else "PATCH"
        answers[f"{op.id} wrong method"] = stack.api.request(other, op.url(), headers=stack.auth)
    for why, response in answers.items():
        assert_security_headers(response)
        assert response.status_code < 500, (why, response.text)
        if response.status_code >= 400:
            assert_problem(response, response.status_code)
    assert answers["openapi"].status_code == 200


def test_405_names_every_method_of_the_path(stack: Stack) -> None:
    """RFC 9110: Allow lists what the resource supports, also where one path has several
    routes (Starlette named only the first)."""
    response = stack.api.put("/privacy_export/privacy/deletion", headers=stack.auth)
    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, POST"
    response = stack.api.post(f"/status/generations/{uuid.uuid4()}", headers=stack.auth)
    assert response.headers["allow"] == "DELETE, GET"


def test_an_unexpected_error_is_a_problem_with_headers_and_no_internals(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Starlette answers an unhandled exception outside every middleware: no request id,
    no security headers. The edge answers it instead."""
    from izgens import accounts

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail: /srv/secret/path")

    monkeypatch.setattr(accounts, "get_account", broken)
    response = stack.api.get("/account/me", headers={**stack.auth, "X-Request-Id": "req-500-abc"})
    assert_problem(response, 500, "internal_error")
    assert response.json()["request_id"] == "req-500-abc"
    assert "secret" not in response.text and "RuntimeError" not in response.text
    assert_security_headers(response)


def test_the_lambda_entry_point_sends_the_same_headers(stack: Stack) -> None:
    """What AWS serves (Mangum, Function URL payload 2.0), not only the dev server."""
    from izgens_functions.account.handler import handler

    event = load("function_url", path="/me", headers={"authorization": "Bearer forged"})
    answer = handler(event, None)
    assert answer["statusCode"] == 401
    headers = {k.lower(): v for k, v in answer["headers"].items()}
    response = httpx.Response(401, headers=headers, content=answer["body"].encode())
    assert_problem(response, 401)
    assert_security_headers(response)
