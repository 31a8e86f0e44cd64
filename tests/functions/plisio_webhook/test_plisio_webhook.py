"""The plisio_webhook function over real HTTP through the dev server, and the whole purchase
flow: checkout → simulator invoice → pay → signed callbacks → credits."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from izgens.config import reset_settings
from izgens.db import Database, get_database
from izgens.logs import configure_logging
from tests.conftest import DevServer
from tests.events import load
from tests.payments.support import (
    SECRET,
    PlisioEnv,
    callback_body,
    events,
    new_purchase,
    purchase,
    sign,
)
from tests.support.problems import assert_problem
from tests.support.servers import dead_url
from tests.support.users import balance, bearer, make_user

CALLBACK = "/plisio_webhook/plisio/callback?json=true"


def post(api: httpx.Client, body: bytes) -> httpx.Response:
    return api.post(CALLBACK, content=body, headers={"Content-Type": "application/json"})


def forged(order: str, case: str) -> bytes:
    fields = json.loads(callback_body(order, "completed"))
    if case == "tampered field":
        fields["status"] = "mismatch"
    elif case == "missing hash":
        del fields["verify_hash"]
    elif case == "wrong key":
        fields["verify_hash"] = sign(fields, "not-the-plisio-secret")
    elif case == "hash of another body":
        fields["verify_hash"] = json.loads(callback_body(order, "expired"))["verify_hash"]
    elif case == "uppercase nonsense hash":
        fields["verify_hash"] = "F" * 40
    return json.dumps(fields, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "case",
    [
        "tampered field",
        "missing hash",
        "wrong key",
        "hash of another body",
        "uppercase nonsense hash",
    ],
)
def test_bad_signatures_get_4xx_and_nothing_is_stored(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv, case: str
) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    before = get_database().round_trips
    response = post(api, forged(str(pid), case))
    body = assert_problem(response, 422, "invalid_signature")
    assert SECRET not in response.text and "verify_hash" in body["detail"]
    assert get_database().round_trips == before  # not even a read
    assert events(db) == [] and purchase(db, pid)["status"] == "pending"
    assert balance(db, user) == 0


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[]", b'{"verify_hash": null}', b"status=completed&verify_hash=ab"],
)
def test_unparseable_bodies_are_refused_like_bad_signatures(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv, content: bytes
) -> None:
    assert_problem(post(api, content), 422, "invalid_signature")
    assert events(db) == []


def test_a_verified_callback_is_stored_once_and_answered_ok(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed")
    first = post(api, body)
    assert first.status_code == 200 and first.json() == {"ok": True}
    duplicate = post(api, body)
    assert duplicate.status_code == 200 and duplicate.json() == {"ok": True}
    assert len(events(db)) == 1 and balance(db, user) == 500


def test_a_verified_callback_for_an_unknown_order_is_answered_ok_and_flagged(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv
) -> None:
    response = post(api, callback_body("order-from-another-shop", "completed"))
    assert response.status_code == 200 and response.json() == {"ok": True}
    [event] = events(db)
    assert event["flagged"] == "unknown_order" and event["purchase_id"] is None


def test_ten_concurrent_deliveries_over_http_credit_once(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed")
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: post(api, body), range(10)))
    assert [a.status_code for a in answers] == [200] * 10
    assert len(events(db)) == 1 and balance(db, user) == 500
    ledger = db.all("select * from public.credit_ledger where reason = 'purchase'")
    assert len(ledger) == 1


def test_a_verified_callback_costs_one_sql_round_trip(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    process_db = get_database()
    for body in (
        callback_body(str(pid), "pending", paid="5.000000"),
        callback_body(str(pid), "completed"),
        callback_body(str(pid), "completed"),
    ):
        before = process_db.round_trips
        assert post(api, body).status_code == 200
        assert process_db.round_trips - before == 1


def test_full_flow_checkout_invoice_pay_callback_credits(
    api: httpx.Client, dev_server: DevServer, db: Database, plisio_env: PlisioEnv
) -> None:
    created = api.post("/dev/users", json={"email": "buyer@example.com"})
    assert created.status_code == 201
    user, auth = created.json()["user_id"], bearer(created.json()["access_token"])
    assert api.post("/account/me/age-confirmation", json={"over_18": True}, headers=auth).is_success

    packs = api.get("/account/packs", headers=auth).json()
    starter = next(p for p in packs if p["id"] == "starter")
    assert starter == {"id": "starter", "credits": 500, "price": "5.00", "currency": "USD"}

    checkout = api.post(
        "/account/checkout",
        json={"pack_id": "starter"},
        headers=auth | {"Idempotency-Key": "buy-starter-1"},
    )
    assert checkout.status_code == 201, checkout.text
    bought = checkout.json()
    assert set(bought) == {"purchase_id", "invoice_url", "status"}
    assert bought["status"] == "pending"
    assert bought["invoice_url"].startswith(f"{plisio_env.sim_url}/invoice/")

    page = httpx.get(bought["invoice_url"], timeout=10)
    assert page.status_code == 200 and "Pay" in page.text and "5.00 USD" in page.text

    paid = api.post(
        "/dev/plisio/pay", json={"purchase_id": bought["purchase_id"], "status": "completed"}
    )
    assert paid.status_code == 200, paid.text
    callbacks = paid.json()["callbacks"]
    assert [c["status"] for c in callbacks] == ["pending", "completed"]
    assert [c["response"]["status_code"] for c in callbacks] == [200, 200]
    assert callbacks[0]["url"] == f"{plisio_env.webhook_url}/plisio/callback?json=true"

    me = api.get("/account/me", headers=auth).json()
    assert me["balance"] == 500
    [entry] = api.get("/account/ledger", headers=auth).json()["items"]
    assert (entry["reason"], entry["ref"], entry["delta"]) == (
        "purchase",
        bought["purchase_id"],
        500,
    )
    [listed] = api.get("/account/purchases", headers=auth).json()["items"]
    assert listed["id"] == bought["purchase_id"] and listed["status"] == "completed"
    assert (listed["credits"], listed["amount"], listed["currency"]) == (500, "5.00", "USD")
    assert listed["created_at"]
    assert uuid.UUID(user) == purchase(db, bought["purchase_id"])["user_id"]


@pytest.mark.parametrize(
    ("status", "amount", "credited", "flag"),
    [
        ("mismatch", None, True, None),
        ("expired", None, False, "partial_payment"),
        ("expired", "0", False, None),
        ("cancelled", None, False, None),
        ("error", None, False, None),
    ],
)
def test_dev_pay_drives_every_outcome(
    api: httpx.Client,
    db: Database,
    plisio_env: PlisioEnv,
    status: str,
    amount: str | None,
    credited: bool,
    flag: str | None,
) -> None:
    from izgens import payments

    user = make_user(db)
    pid = payments.start_checkout(
        db, user_id=user, pack_id="starter", idempotency_key="k", client_ip=None
    ).purchase_id
    body: dict = {"purchase_id": str(pid), "status": status}
    if amount is not None:
        body["amount"] = amount
    answer = api.post("/dev/plisio/pay", json=body)
    assert answer.status_code == 200, answer.text
    row = purchase(db, pid)
    assert row["status"] == status and (row["credited_at"] is not None) == credited
    assert row["flagged"] == flag and balance(db, user) == (500 if credited else 0)


def test_dev_pay_refuses_what_the_simulator_cannot_do(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv
) -> None:
    assert_problem(
        api.post("/dev/plisio/pay", json={"purchase_id": str(uuid.uuid4()), "status": "completed"}),
        404,
        "not_found",
    )
    assert_problem(
        api.post("/dev/plisio/pay", json={"purchase_id": str(uuid.uuid4()), "status": "new"}),
        422,
        "invalid_request",
    )
    from izgens import payments

    user = make_user(db)
    pid = payments.start_checkout(
        db, user_id=user, pack_id="starter", idempotency_key="k", client_ip=None
    ).purchase_id
    assert api.post("/dev/plisio/pay", json={"purchase_id": str(pid), "status": "cancelled"})
    again = api.post("/dev/plisio/pay", json={"purchase_id": str(pid), "status": "completed"})
    assert_problem(again, 409, "invalid_transition")
    assert balance(db, user) == 0


@pytest.fixture
def logging_configured() -> Iterator[None]:
    """The JSON log setup replaces root handlers once per process; do it before the test
    so pytest's capture handler is in place while the test runs."""
    configure_logging("INFO")
    yield


def test_the_plisio_key_is_absent_from_logs_errors_and_rows(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    plisio_env: PlisioEnv,
    monkeypatch: pytest.MonkeyPatch,
    logging_configured: None,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.access"):
        caplog.set_level(logging.DEBUG, logger=noisy)
    user = make_user(db)
    auth = bearer(dev_server.token(user))
    shown: list[str] = []

    def buy(key: str) -> httpx.Response:
        response = api.post(
            "/account/checkout",
            json={"pack_id": "starter"},
            headers=auth | {"Idempotency-Key": key},
        )
        shown.append(response.text)
        return response

    ok = buy("ok")
    assert ok.status_code == 201
    shown.append(
        api.post(
            "/dev/plisio/pay", json={"purchase_id": ok.json()["purchase_id"], "status": "completed"}
        ).text
    )
    shown.append(post(api, forged(ok.json()["purchase_id"], "wrong key")).text)

    wrong_key = "wrong-plisio-key-3a9d-MUST-NOT-LEAK"
    monkeypatch.setenv("PLISIO_SECRET_KEY", wrong_key)
    reset_settings()
    assert_problem(buy("refused"), 422, "provider_rejected")  # the simulator refuses the key

    monkeypatch.setenv("PLISIO_SECRET_KEY", SECRET)
    monkeypatch.setenv("PLISIO_BASE_URL", f"{dead_url()}/api/v1")
    reset_settings()
    assert_problem(buy("unreachable"), 503, "provider_unavailable")

    captured = capfd.readouterr()
    stored = json.dumps(db.all("select * from public.payment_events"), default=str)
    stored += json.dumps(db.all("select * from public.purchases"), default=str)
    for secret in (SECRET, wrong_key):
        assert secret not in caplog.text
        assert all(secret not in m for r in caplog.records for m in (r.getMessage(), str(r.args)))
        assert secret not in captured.out and secret not in captured.err
        assert all(secret not in text for text in shown)
        assert secret not in stored
    assert caplog.records  # the capture did see the requests


def test_the_function_imports_no_jwt_library_database_driver_or_http_client() -> None:
    """Cold start: importing the handler and refusing a bad callback loads no JWT library,
    no database driver and no HTTP client."""
    event = load(
        "function_url",
        method="POST",
        path="/plisio/callback",
        query="json=true",
        headers={"content-type": "application/json"},
        body=json.dumps({"status": "completed", "verify_hash": "0" * 40}),
    )
    script = """
import json, sys
import izgens_functions.plisio_webhook.handler as h
loaded_at_import = [m for m in ("jwt", "psycopg", "boto3", "httpx") if m in sys.modules]
event = json.loads(sys.argv[1])
class Context:
    aws_request_id = "test-request-0001"
status = h.handler(event, Context())["statusCode"]
after = [m for m in ("jwt", "psycopg", "boto3", "httpx") if m in sys.modules]
print(json.dumps({"import": loaded_at_import, "after": after, "status": status}))
"""
    env = {"IZGENS_ENV": "test", "PLISIO_SECRET_KEY": "k", "LOG_LEVEL": "WARNING", "PATH": ""}
    out = subprocess.run(
        [sys.executable, "-c", script, json.dumps(event)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"import": [], "after": [], "status": 422}


def test_openapi_documents_the_callback(api: httpx.Client) -> None:
    spec = api.get("/plisio_webhook/openapi.json").json()
    assert "/plisio/callback" in spec["paths"]
    assert_problem(api.get("/plisio_webhook/plisio/callback"), 405, "method_not_allowed")


def test_a_callback_to_a_dead_webhook_is_only_lost_not_wrong(
    api: httpx.Client, db: Database, plisio_env: PlisioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When nobody answers, the simulator records the failure and nothing is written; the
    reconciliation tests pick it up from there."""
    from izgens import payments

    monkeypatch.setenv("PUBLIC_BASE_URLS", f"plisio_webhook={dead_url()}")
    reset_settings()
    user = make_user(db)
    pid = payments.start_checkout(
        db, user_id=user, pack_id="starter", idempotency_key="k", client_ip=None
    ).purchase_id
    answer = api.post("/dev/plisio/pay", json={"purchase_id": str(pid), "status": "completed"})
    assert all("error" in c["response"] for c in answer.json()["callbacks"])
    assert events(db) == [] and purchase(db, pid)["status"] == "pending"
