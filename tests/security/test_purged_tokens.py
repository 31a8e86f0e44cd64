"""One answer for a purged account's token: 401 on every route that needs a user. The token
is still cryptographically valid (Supabase tokens outlive their user by up to an hour), so
each route's own SQL call checks that the user still exists (`izgens.require_user` or the
same IZ008 'profile'), in the round trip the route already makes; nothing is written and
the account never comes back. Anonymous sessions are refused for any `is_anonymous` but
false."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from izgens.cleanup import run_jobs
from tests.security.support import Stack, operations
from tests.security.test_inputs import _json_body
from tests.support.problems import assert_problem
from tests.support.users import make_user

SECURED = [op for op in operations() if op.secured]


@pytest.fixture
def purged(stack: Stack) -> dict[str, Any]:
    """A user with a finished generation, an export and a purchase, purged by the real job
    (their token kept, as a client would keep it)."""
    user, token = stack.new_user()
    auth = {"Authorization": f"Bearer {token}"}
    generation = stack.completed_generation(auth)
    export = stack.api.post("/privacy_export/privacy/exports", headers=auth)
    assert export.status_code == 202, export.text
    bought = stack.api.post(
        "/account/checkout",
        json={"pack_id": "starter"},
        headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert bought.status_code == 201, bought.text
    assert stack.api.post("/privacy_export/privacy/deletion", headers=auth).status_code == 202
    stack.db.execute(
        "update public.deletion_requests set scheduled_for = now() where user_id = %s", (user,)
    )
    outcome = run_jobs(["purge"])["purge"]
    assert (outcome["purged"], outcome["failed"]) == (1, 0)
    assert stack.db.one("select 1 as x from auth.users where id = %s", (user,)) is None
    return {
        "user": user,
        "auth": auth,
        "ids": {"generation_id": generation, "export_id": export.json()["id"]},
    }


def test_a_purged_accounts_token_is_401_on_every_route_and_writes_nothing(
    stack: Stack, purged: dict[str, Any]
) -> None:
    """Every route that needs a user (from the OpenAPI documents), with its own former ids
    and with ids that never existed: not 200 with empty lists (the reads), not 404 (the
    ids), not 403: signed out. One purge serves every route."""
    assert len(SECURED) >= 17
    wrong = []
    for op in SECURED:
        for ids in (purged["ids"], {}):
            before = stack.counts()
            response = stack.api.request(
                op.method,
                op.url(**ids),
                json=_json_body(op),
                headers={**purged["auth"], "Idempotency-Key": uuid.uuid4().hex},
            )
            code = response.json().get("code") if response.status_code >= 400 else None
            if (response.status_code, code) != (401, "unauthenticated"):
                wrong.append((op.id, response.status_code, response.text[:200]))
                continue
            assert_problem(response, 401)
            assert response.headers["www-authenticate"] == "Bearer"
            if stack.counts() != before:  # no row, no rate-limit hit, no profile
                wrong.append((op.id, "wrote", stack.counts()))
    assert wrong == []
    assert stack.db.all("select 1 from public.profiles where user_id = %s", (purged["user"],)) == []


def test_a_user_seen_for_the_first_time_is_not_refused(stack: Stack) -> None:
    """The check is "the auth user exists", not "a profile exists": a new user's first call
    may be any read, and makes their profile, as GET /account/me does."""
    for path in ("/account/ledger", "/account/packs", "/status/generations", "/generate/quote"):
        user = make_user(stack.db, profile=False)
        token = stack.dev.token(user)
        response = stack.api.get(path, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, (path, response.text)
        assert stack.db.one("select 1 as x from public.profiles where user_id = %s", (user,))


@pytest.mark.parametrize(
    "value",
    [True, "true", 1, "1", "false", "yes", 0, "", [], {}, [True]],
    ids=repr,
)
def test_an_anonymous_session_is_refused_for_any_value_but_false(
    stack: Stack, value: object
) -> None:
    before = stack.counts()
    token = stack.dev.token(stack.user, claims={"is_anonymous": value})
    for path in ("/account/me", "/account/ledger", "/status/generations"):
        response = stack.api.get(path, headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)
    after = stack.counts()
    del after["rate_limits"], before["rate_limits"]  # the failures are counted, nothing else
    assert after == before


@pytest.mark.parametrize("value", [False, None, "absent"], ids=repr)
def test_a_signed_up_session_passes(stack: Stack, value: object) -> None:
    import jwt

    token = stack.dev.token(stack.user, claims={"is_anonymous": value})
    if value == "absent":  # tokens of older Supabase Auth versions carry no such claim
        claims = jwt.decode(token, options={"verify_signature": False})
        del claims["is_anonymous"]
        token = jwt.encode(
            claims,
            stack.dev.signer._key,  # type: ignore[attr-defined]
            algorithm="ES256",
            headers={"kid": jwt.get_unverified_header(token)["kid"]},
        )
    response = stack.api.get("/account/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
