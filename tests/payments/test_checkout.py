"""`payments.start_checkout` against a real Postgres and the Plisio simulator over HTTP:
gates, idempotency (one purchase, one invoice), the invoice we ask Plisio for."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest

from izgens import errors, payments
from izgens.config import reset_settings
from izgens.db import Database
from tests.payments.support import FRONTEND, PlisioEnv, purchase
from tests.support.servers import dead_url
from tests.support.users import make_user


def checkout(db: Database, user: uuid.UUID, key: str = "click-1", pack: str = "starter"):
    return payments.start_checkout(
        db, user_id=user, pack_id=pack, idempotency_key=key, client_ip="203.0.113.9"
    )


def test_checkout_makes_a_pending_purchase_and_its_invoice(
    db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    result = checkout(db, user, pack="creator")
    assert result.status == "pending"
    assert result.invoice_url and result.invoice_url.startswith(f"{plisio_env.sim_url}/invoice/")
    row = purchase(db, result.purchase_id)
    assert (row["pack_id"], row["credits"], str(row["amount"]), row["currency"]) == (
        "creator",
        1100,
        "10.00",
        "USD",
    )
    assert row["user_id"] == user and row["invoice_url"] == result.invoice_url
    assert str(row["client_ip"]) == "203.0.113.9" and row["idempotency_key"] == "click-1"
    [invoice] = plisio_env.invoices(result.purchase_id)
    assert invoice["txn_id"] == row["plisio_txn_id"]
    assert invoice["order_number"] == str(result.purchase_id)
    assert (invoice["source_amount"], invoice["source_currency"]) == ("10.00", "USD")
    assert invoice["order_name"] == "1100 credits"
    callback = urlsplit(invoice["callback_url"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == (
        f"{plisio_env.webhook_url}/plisio/callback"
    )
    assert ("json", "true") in parse_qsl(callback.query)
    assert invoice["expire_at_utc"] - invoice["created_at_utc"] == payments.INVOICE_EXPIRE_MIN * 60


def test_the_invoice_page_sends_the_buyer_back_to_the_frontend(
    db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    result = checkout(db, user)
    plisio_env.pay(result.purchase_id, "completed")
    page = plisio_env.sim.get(f"/invoice/{purchase(db, result.purchase_id)['plisio_txn_id']}")
    assert f"{FRONTEND}/purchases/{result.purchase_id}?result=paid" in page.text


def test_a_retried_click_returns_the_same_purchase_and_invoice(
    db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    first, again = checkout(db, user), checkout(db, user)
    assert first == again
    assert len(plisio_env.invoices(first.purchase_id)) == 1
    assert db.one("select count(*) as n from public.purchases")["n"] == 1  # type: ignore[index]


def test_concurrent_clicks_with_one_key_make_one_purchase_and_one_invoice(
    db: Database, plisio_env: PlisioEnv
) -> None:
    user = make_user(db)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: checkout(db, user), range(8)))
    assert len({r.purchase_id for r in results}) == 1
    assert len({r.invoice_url for r in results}) == 1
    assert len(plisio_env.invoices(results[0].purchase_id)) == 1
    assert len(plisio_env.sim.get("/sim/invoices").json()["invoices"]) == 1


def test_another_pack_with_the_same_key_is_a_conflict(db: Database, plisio_env: PlisioEnv) -> None:
    user = make_user(db)
    checkout(db, user)
    with pytest.raises(errors.IdempotencyConflict):
        checkout(db, user, pack="studio")
    assert db.one("select count(*) as n from public.purchases")["n"] == 1  # type: ignore[index]


def test_keys_are_per_user(db: Database, plisio_env: PlisioEnv) -> None:
    one, two = make_user(db), make_user(db)
    assert checkout(db, one).purchase_id != checkout(db, two).purchase_id


def test_a_failed_invoice_call_is_retried_by_the_next_click(
    db: Database, plisio_env: PlisioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(db)
    monkeypatch.setenv("PLISIO_BASE_URL", f"{dead_url()}/api/v1")
    reset_settings()
    with pytest.raises(errors.ProviderUnavailable):
        checkout(db, user)
    [row] = db.all("select * from public.purchases")
    assert row["status"] == "pending" and row["invoice_url"] is None
    monkeypatch.setenv("PLISIO_BASE_URL", plisio_env.api_url)
    reset_settings()
    result = checkout(db, user)
    assert result.purchase_id == row["id"] and result.invoice_url
    assert len(plisio_env.invoices(row["id"])) == 1


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        ("under age", errors.AgeNotConfirmed),
        ("blocked", errors.AccountBlocked),
        ("deletion pending", errors.DeletionPending),
        ("no profile", errors.Unauthenticated),
        ("unknown pack", errors.NotFound),
        ("inactive pack", errors.NotFound),
    ],
)
def test_gates_refuse_before_anything_is_written(
    db: Database, plisio_env: PlisioEnv, setup: str, error: type[Exception]
) -> None:
    user = make_user(db, adult=setup != "under age")
    pack = "starter"
    if setup == "blocked":
        db.execute("update public.profiles set blocked_at = now() where user_id = %s", (user,))
    elif setup == "deletion pending":
        db.execute(
            "insert into public.deletion_requests (user_id, scheduled_for)"
            " values (%s, now() + interval '3 days')",
            (user,),
        )
    elif setup == "no profile":
        user = uuid.uuid4()
    elif setup == "unknown pack":
        pack = "gold"
    elif setup == "inactive pack":
        db.execute("update public.credit_packs set active = false where id = 'studio'")
        pack = "studio"
    with pytest.raises(error):
        checkout(db, user, pack=pack)
    assert db.all("select * from public.purchases") == []
    assert plisio_env.sim.get("/sim/invoices").json()["invoices"] == []


def test_checkout_is_rate_limited_per_user(
    db: Database, plisio_env: PlisioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RATE_CHECKOUT_USER", "2")
    reset_settings()
    user = make_user(db)
    checkout(db, user, "a")
    checkout(db, user, "b")
    assert checkout(db, user, "a").invoice_url  # a retry is not a new hit
    with pytest.raises(errors.RateLimited) as caught:
        checkout(db, user, "c")
    assert caught.value.retry_after >= 1 and caught.value.bucket == "checkout"
    assert db.one("select count(*) as n from public.purchases")["n"] == 2  # type: ignore[index]


def test_missing_payment_configuration_is_503_before_anything_is_written(
    db: Database, plisio_env: PlisioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = make_user(db)
    monkeypatch.setenv("PUBLIC_BASE_URLS", "status=https://status.example")
    reset_settings()
    with pytest.raises(errors.ProviderUnavailable):
        checkout(db, user)
    assert db.all("select * from public.purchases") == []


def test_list_purchases_pages_newest_first(db: Database, plisio_env: PlisioEnv) -> None:
    user, other = make_user(db), make_user(db)
    made = [checkout(db, user, f"k{i}").purchase_id for i in range(7)]
    checkout(db, other, "k0")
    seen, cursor = [], None
    while True:
        page = payments.list_purchases(db, user, limit=3, cursor=cursor)
        seen += page.items
        cursor = page.next_cursor
        if not cursor:
            break
    assert [p.id for p in seen] == list(reversed(made))
    assert {p.status for p in seen} == {"pending"} and all(p.credits == 500 for p in seen)


def test_purchase_details_show_the_row_and_its_events(db: Database, plisio_env: PlisioEnv) -> None:
    user = make_user(db)
    result = checkout(db, user)
    plisio_env.pay(result.purchase_id, "completed")
    details = payments.get_purchase_details(db, result.purchase_id)
    assert details.purchase["status"] == "completed"
    assert [e["status"] for e in details.events] == ["pending", "completed"]
    with pytest.raises(errors.NotFound):
        payments.get_purchase_details(db, uuid.uuid4())


def test_claim_reconciliation_is_bounded_and_moves_on(db: Database, plisio_env: PlisioEnv) -> None:
    user = make_user(db)
    ids = [checkout(db, user, f"k{i}").purchase_id for i in range(3)]
    db.execute("update public.purchases set created_at = now() - interval '1 hour'")
    claim = "select id from izgens.claim_reconciliation(%s, %s, %s)"
    first = {r["id"] for r in db.all(claim, (600, 2, 600))}
    second = {r["id"] for r in db.all(claim, (600, 2, 600))}
    assert len(first) == 2 and len(second) == 1 and first | second == set(ids)
    assert db.all(claim, (600, 2, 600)) == []  # all checked within the recheck interval
    assert db.all(claim, (int(timedelta(hours=2).total_seconds()), 5, 0)) == []  # too young
