"""The account function's shop routes over real HTTP: GET /packs, POST /checkout (with its
Idempotency-Key), GET /purchases; every bad request a 4xx problem that writes nothing."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from izgens.db import Database
from tests.conftest import DevServer
from tests.payments.support import PlisioEnv
from tests.support.problems import assert_problem
from tests.support.users import bearer, make_user


def buy(
    api: httpx.Client, auth: dict[str, str], key: str | None = "click-1", pack: object = "starter"
) -> httpx.Response:
    headers = auth | ({"Idempotency-Key": key} if key is not None else {})
    return api.post("/account/checkout", json={"pack_id": pack}, headers=headers)


def test_packs_lists_the_active_catalogue(
    api: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    db.execute("update public.credit_packs set active = false where id = 'studio'")
    auth = bearer(dev_server.token(make_user(db)))
    packs = api.get("/account/packs", headers=auth)
    assert packs.status_code == 200
    assert packs.json() == [
        {"id": "starter", "credits": 500, "price": "5.00", "currency": "USD"},
        {"id": "creator", "credits": 1100, "price": "10.00", "currency": "USD"},
    ]


def test_shop_routes_need_a_token(api: httpx.Client) -> None:
    for method, path in (("GET", "/packs"), ("POST", "/checkout"), ("GET", "/purchases")):
        response = api.request(method, f"/account{path}", json={"pack_id": "starter"})
        assert_problem(response, 401, "unauthenticated")


def test_checkout_answers_201_with_the_invoice(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    auth = bearer(dev_server.token(make_user(db)))
    response = buy(api, auth)
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"purchase_id", "invoice_url", "status"} and body["status"] == "pending"
    assert len(plisio_env.invoices(body["purchase_id"])) == 1


def test_duplicate_clicks_make_one_purchase_and_one_invoice(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    auth = bearer(dev_server.token(make_user(db)))
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: buy(api, auth), range(8)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["purchase_id"] for a in answers}) == 1
    assert len({a.json()["invoice_url"] for a in answers}) == 1
    assert len(plisio_env.invoices(answers[0].json()["purchase_id"])) == 1
    assert db.one("select count(*) as n from public.purchases")["n"] == 1  # type: ignore[index]


def test_the_same_key_with_another_pack_is_409(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    auth = bearer(dev_server.token(make_user(db)))
    assert buy(api, auth).status_code == 201
    assert_problem(buy(api, auth, pack="studio"), 409, "idempotency_conflict")
    assert db.one("select count(*) as n from public.purchases")["n"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("key", "body", "status", "code"),
    [
        (None, {"pack_id": "starter"}, 422, "invalid_request"),
        ("", {"pack_id": "starter"}, 422, "invalid_request"),
        ("k" * 256, {"pack_id": "starter"}, 422, "invalid_request"),
        ("k", {}, 422, "invalid_request"),
        ("k", {"pack_id": 1}, 422, "invalid_request"),
        ("k", {"pack_id": ["starter"]}, 422, "invalid_request"),
        ("k", {"pack_id": "starter", "credits": 100000}, 422, "invalid_request"),
        ("k", {"pack_id": "Starter!"}, 422, "invalid_request"),
        ("k", {"pack_id": "x" * 41}, 422, "invalid_request"),
        ("k", {"pack_id": "gold"}, 404, "not_found"),
        ("k", ["starter"], 422, "invalid_request"),
    ],
)
def test_bad_checkouts_are_4xx_and_write_nothing(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    plisio_env: PlisioEnv,
    key: str | None,
    body: object,
    status: int,
    code: str,
) -> None:
    auth = bearer(dev_server.token(make_user(db)))
    headers = auth | ({"Idempotency-Key": key} if key is not None else {})
    response = api.post("/account/checkout", json=body, headers=headers)
    assert_problem(response, status, code)
    assert db.all("select * from public.purchases") == []
    assert plisio_env.sim.get("/sim/invoices").json()["invoices"] == []


def test_the_longest_key_is_accepted(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    auth = bearer(dev_server.token(make_user(db)))
    assert buy(api, auth, key="k" * 255).status_code == 201


@pytest.mark.parametrize(
    ("state", "status", "code"),
    [
        ("under age", 403, "age_not_confirmed"),
        ("blocked", 403, "account_blocked"),
        ("deletion pending", 403, "deletion_pending"),
    ],
)
def test_account_gates_refuse_checkout(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    plisio_env: PlisioEnv,
    state: str,
    status: int,
    code: str,
) -> None:
    user = make_user(db, adult=state != "under age")
    if state == "blocked":
        db.execute("update public.profiles set blocked_at = now() where user_id = %s", (user,))
    if state == "deletion pending":
        db.execute(
            "insert into public.deletion_requests (user_id, scheduled_for)"
            " values (%s, now() + interval '1 day')",
            (user,),
        )
    assert_problem(buy(api, bearer(dev_server.token(user))), status, code)
    assert db.all("select * from public.purchases") == []


def test_checkout_rate_limit_is_429_with_retry_after(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    plisio_env: PlisioEnv,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from izgens.config import reset_settings

    monkeypatch.setenv("RATE_CHECKOUT_USER", "1")
    reset_settings()
    auth = bearer(dev_server.token(make_user(db)))
    assert buy(api, auth, key="a").status_code == 201
    limited = buy(api, auth, key="b")
    assert_problem(limited, 429, "rate_limited")
    assert int(limited.headers["retry-after"]) >= 1


def test_purchases_are_paged_and_never_another_users(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    me, other = make_user(db), make_user(db)
    auth, other_auth = bearer(dev_server.token(me)), bearer(dev_server.token(other))
    mine = [buy(api, auth, key=f"k{i}").json()["purchase_id"] for i in range(5)]
    theirs = buy(api, other_auth, key="k0").json()["purchase_id"]
    seen, cursor = [], None
    while True:
        params: dict = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = api.get("/account/purchases", params=params, headers=auth)
        assert page.status_code == 200
        seen += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert [p["id"] for p in seen] == list(reversed(mine)) and theirs not in mine
    first = seen[0]
    assert {"id", "status", "credits", "amount", "currency", "created_at"} <= set(first)
    assert (first["status"], first["credits"], first["amount"]) == ("pending", 500, "5.00")
    # forged paging is refused; a user who bought nothing sees an empty list, a token whose
    # user does not exist (or no longer: purged) gets 401
    for query in ("limit=0", "limit=101", "cursor=%%%", "cursor=WyJ4Il0", "cursor=" + "A" * 300):
        assert_problem(api.get(f"/account/purchases?{query}", headers=auth), 422, "invalid_request")
    newcomer = bearer(dev_server.token(make_user(db)))
    assert api.get("/account/purchases", headers=newcomer).json() == {
        "items": [],
        "next_cursor": None,
    }
    nobody = bearer(dev_server.token(uuid.uuid4()))
    assert_problem(api.get("/account/purchases", headers=nobody), 401, "unauthenticated")


def test_openapi_lists_the_shop_routes(api: httpx.Client) -> None:
    spec = api.get("/account/openapi.json").json()
    assert {"/packs", "/checkout", "/purchases"} <= set(spec["paths"])
    params = spec["paths"]["/checkout"]["post"]["parameters"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in params)
