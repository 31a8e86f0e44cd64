"""The account function over real HTTP through the dev server: profile, age gate, ledger,
and every way a token or a body can be wrong (401/4xx problem+json, nothing written)."""

from __future__ import annotations

import httpx
import pytest

from izgens import credits
from izgens.db import Database
from tests.conftest import DevServer
from tests.support.problems import assert_problem
from tests.support.tokens import FORGERIES, forge
from tests.support.users import bearer, make_user


def test_me_creates_the_profile_on_first_sight(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, "first@example.com", profile=False)
    response = api.get("/account/me", headers=bearer(dev_server.token(user, "first@example.com")))
    assert response.status_code == 200
    body = response.json()
    assert body["user_id"] == str(user)
    assert body["email"] == "first@example.com"
    assert body["balance"] == 0 and body["age_confirmed"] is False
    assert body["deletion_scheduled_for"] is None
    assert response.headers["x-request-id"]
    assert response.headers["x-content-type-options"] == "nosniff"


def test_age_confirmation_and_ledger_paging(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, profile=False)
    token = dev_server.token(user)
    confirmed = api.post(
        "/account/me/age-confirmation", json={"over_18": True}, headers=bearer(token)
    )
    assert confirmed.status_code == 200 and confirmed.json()["age_confirmed"] is True
    for i in range(45):
        credits.grant(db, user, i + 1, f"page-{i}")
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 20} | ({"cursor": cursor} if cursor else {})
        page = api.get("/account/ledger", params=params, headers=bearer(token)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 45
    assert [e["delta"] for e in seen] == list(range(45, 0, -1))
    assert seen[0]["balance_after"] == sum(range(1, 46))
    assert set(seen[0]) >= {"delta", "balance_after", "reason", "ref", "created_at"}


def test_a_token_for_a_deleted_user_does_not_bring_the_account_back(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, profile=False)
    token = dev_server.token(user)
    assert api.get("/account/me", headers=bearer(token)).status_code == 200
    db.execute("delete from auth.users where id = %s", (user,))
    assert_problem(api.get("/account/me", headers=bearer(token)), 401, "unauthenticated")
    assert db.all("select 1 from public.profiles where user_id = %s", (user,)) == []


@pytest.mark.parametrize("how", FORGERIES)
def test_forged_or_invalid_tokens_get_401_and_write_nothing(
    api: httpx.Client, dev_server: DevServer, db: Database, how: str
) -> None:
    user = make_user(db, profile=False)
    token = forge(dev_server, user, how)
    for method, path, body in (
        ("GET", "/account/me", None),
        ("POST", "/account/me/age-confirmation", {"over_18": True}),
        ("GET", "/account/ledger", None),
    ):
        response = api.request(method, path, json=body, headers=bearer(token))
        assert_problem(response, 401, "unauthenticated")
        assert response.headers["www-authenticate"] == "Bearer"
    assert db.all("select 1 from public.profiles where user_id = %s", (user,)) == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer"},
        {"Authorization": "Bearer a.b"},
    ],
)
def test_missing_or_garbled_authorization_is_401(
    api: httpx.Client, headers: dict[str, str]
) -> None:
    assert_problem(api.get("/account/me", headers=headers), 401, "unauthenticated")


def test_bad_bodies_get_4xx_problems_and_change_nothing(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, profile=False)
    auth = bearer(dev_server.token(user))
    post = "/account/me/age-confirmation"
    assert_problem(
        api.post(post, content=b"{not json", headers=auth | {"content-type": "application/json"}),
        400,
        "invalid_json",
    )
    for body in (
        {"over_18": "true"},
        {"over_18": 1},
        {"over_18": False},
        {},
        {"over_18": True, "x": 1},
        [1],
        "yes",
    ):
        assert_problem(api.post(post, json=body, headers=auth), 422, "invalid_request")
    huge = b'{"over_18": true, "pad": "' + b"x" * 70_000 + b'"}'
    assert_problem(
        api.post(post, content=huge, headers=auth | {"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    for query in (
        "limit=0",
        "limit=101",
        "limit=abc",
        "cursor=%%%",
        "cursor=WyJ4Il0",
        "cursor=" + "A" * 300,
    ):
        assert_problem(api.get(f"/account/ledger?{query}", headers=auth), 422, "invalid_request")
    row = db.one("select age_confirmed_at from public.profiles where user_id = %s", (user,))
    assert row is None or row["age_confirmed_at"] is None


def test_unknown_routes_and_methods_are_problems(api: httpx.Client) -> None:
    assert_problem(api.get("/account/nope"), 404, "not_found")
    assert_problem(api.delete("/account/me"), 405, "method_not_allowed")
    assert_problem(api.get("/no-such-function/x"), 404, "not_found")


def test_openapi_is_served_per_function(api: httpx.Client) -> None:
    spec = api.get("/account/openapi.json").json()
    assert {"/me", "/me/age-confirmation", "/ledger"} <= set(spec["paths"])
