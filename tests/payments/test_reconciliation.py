"""`payments.reconcile_pending_purchases`: a payment whose callback never arrived is settled
from Plisio's operations API, through the same SQL function, at most once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from izgens import payments
from izgens.config import reset_settings
from izgens.db import Database
from izgens.plisio import PlisioClient
from tests.payments.support import SECRET, PlisioEnv, callback_body, events, purchase
from tests.support.servers import dead_url
from tests.support.users import balance, make_user

AGED = "update public.purchases set created_at = now() - interval '1 hour'"


@pytest.fixture
def lost_callbacks(plisio_env: PlisioEnv, monkeypatch: pytest.MonkeyPatch) -> PlisioEnv:
    """Invoices made now carry a callback URL nothing listens on: every callback is lost."""
    monkeypatch.setenv("PUBLIC_BASE_URLS", f"plisio_webhook={dead_url()}/plisio_webhook")
    reset_settings()
    return plisio_env


def buy(db: Database, user: uuid.UUID, key: str = "click") -> uuid.UUID:
    return payments.start_checkout(
        db, user_id=user, pack_id="starter", idempotency_key=key, client_ip=None
    ).purchase_id


def reconcile(db: Database, env: PlisioEnv, **kw: object) -> payments.ReconcileReport:
    with PlisioClient(env.api_url, SECRET, timeout=5, backoff=0) as client:
        args: dict = {"older_than": timedelta(minutes=10), "limit": 50} | kw
        return payments.reconcile_pending_purchases(db, client, **args)


def test_reconciliation_settles_a_purchase_whose_callback_was_dropped(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    user = make_user(db)
    pid = buy(db, user)
    answer = lost_callbacks.pay(pid, "completed")
    assert all("error" in c["response"] for c in answer["callbacks"])  # nobody got them
    assert purchase(db, pid)["status"] == "pending" and events(db) == []

    assert reconcile(db, lost_callbacks).checked == 0  # not pending long enough yet
    db.execute(AGED)
    report = reconcile(db, lost_callbacks)
    assert (report.checked, report.events, report.credited, report.errors) == (1, 1, 1, 0)
    row = purchase(db, pid)
    assert row["status"] == "completed" and row["credited_at"] is not None
    assert balance(db, user) == 500
    [event] = events(db)
    assert event["source"] == "reconciliation" and event["purchase_id"] == pid
    assert event["payload"]["operation"]["status"] == "completed"
    entries = db.all("select reason, ref from public.credit_ledger where user_id = %s", (user,))
    assert entries == [{"reason": "purchase", "ref": str(pid)}]
    assert reconcile(db, lost_callbacks).checked == 0  # settled: nothing left to look at


def test_a_late_callback_after_reconciliation_changes_nothing(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    user = make_user(db)
    pid = buy(db, user)
    lost_callbacks.pay(pid, "completed")
    db.execute(AGED)
    assert reconcile(db, lost_callbacks).credited == 1
    txn = purchase(db, pid)["plisio_txn_id"]
    late = payments.handle_callback(
        db, callback_body(str(pid), "completed", txn_id=txn), secret_key=SECRET
    )
    assert not late.credited and late.status == "completed" and balance(db, user) == 500


def test_an_unchanged_open_invoice_is_recorded_once(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    user = make_user(db)
    pid = buy(db, user)
    db.execute(AGED)
    first = reconcile(db, lost_callbacks)
    assert (first.checked, first.events, first.credited) == (1, 1, 0)
    db.execute("update public.purchases set reconciled_at = now() - interval '1 hour'")
    again = reconcile(db, lost_callbacks)
    assert (again.checked, again.events, again.duplicates) == (1, 0, 1)
    assert purchase(db, pid)["status"] == "pending" and len(events(db)) == 1


def test_reconciliation_records_partial_and_overpaid_outcomes(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    user = make_user(db)
    partial, overpaid = buy(db, user, "a"), buy(db, user, "b")
    lost_callbacks.pay(partial, "expired")
    lost_callbacks.pay(overpaid, "mismatch")
    db.execute(AGED)
    report = reconcile(db, lost_callbacks)
    assert (report.checked, report.credited, report.flagged) == (2, 1, 1)
    assert purchase(db, partial)["status"] == "expired"
    assert purchase(db, partial)["flagged"] == "partial_payment"
    assert purchase(db, overpaid)["status"] == "mismatch"
    assert balance(db, user) == 500


def test_reconciliation_is_bounded_per_run(db: Database, lost_callbacks: PlisioEnv) -> None:
    user = make_user(db)
    ids = [buy(db, user, f"k{i}") for i in range(3)]
    for pid in ids:
        lost_callbacks.pay(pid, "completed")
    db.execute(AGED)
    first = reconcile(db, lost_callbacks, limit=2)
    second = reconcile(db, lost_callbacks, limit=2)
    assert (first.checked, first.credited, second.checked, second.credited) == (2, 2, 1, 1)
    assert balance(db, user) == 1500


def test_a_purchase_plisio_never_invoiced_is_missing_until_the_limit_then_expired(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    """Nothing waits forever: a purchase whose checkout never got an invoice (Plisio failed,
    the buyer gave up) is `missing` while young, then expired, once, and counted so."""
    from tests.payments.support import new_purchase

    user = make_user(db)
    pid = new_purchase(db, user)  # no invoice was ever made
    db.execute(AGED)
    limit = timedelta(hours=24)
    report = reconcile(db, lost_callbacks, expire_uninvoiced_after=limit)
    assert (report.checked, report.missing, report.expired, report.events) == (1, 1, 0, 0)
    assert purchase(db, pid)["status"] == "pending"

    db.execute(
        "update public.purchases set created_at = now() - interval '25 hours', reconciled_at = null"
    )
    report = reconcile(db, lost_callbacks, expire_uninvoiced_after=limit)
    assert (report.checked, report.missing, report.expired, report.events) == (1, 0, 1, 0)
    row = purchase(db, pid)
    assert row["status"] == "expired" and row["credited_at"] is None and row["flagged"] is None
    db.execute("update public.purchases set reconciled_at = null")
    assert reconcile(db, lost_callbacks, expire_uninvoiced_after=limit).checked == 0
    assert events(db) == [] and balance(db, user) == 0

    # money that shows up after all still completes it, once
    late = payments.handle_callback(db, callback_body(str(pid), "completed"), secret_key=SECRET)
    assert late.credited and purchase(db, pid)["status"] == "completed"
    assert balance(db, user) == 500


def test_only_never_invoiced_purchases_expire(db: Database, lost_callbacks: PlisioEnv) -> None:
    """One with an invoice is Plisio's to end (its invoice expires there and reconciliation
    records that); the SQL refuses to expire it, however old."""
    user = make_user(db)
    pid = buy(db, user)
    db.execute("update public.purchases set created_at = now() - interval '30 days'")
    assert db.all("select * from izgens.expire_uninvoiced_purchase(%s, 0)", (pid,)) == []
    report = reconcile(db, lost_callbacks, expire_uninvoiced_after=timedelta(hours=1))
    assert (report.expired, report.events) == (0, 1)  # its open invoice, recorded
    assert purchase(db, pid)["status"] == "pending"


def test_the_purchases_job_expires_with_the_configured_limit(
    db: Database, lost_callbacks: PlisioEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    from izgens.cleanup import run_jobs
    from tests.payments.support import new_purchase

    user = make_user(db)
    young, old = new_purchase(db, user), new_purchase(db, user)
    db.execute(
        "update public.purchases set created_at = now() - interval '3 hours' where id = %s", (old,)
    )
    db.execute(
        "update public.purchases set created_at = now() - interval '1 hour' where id = %s", (young,)
    )
    monkeypatch.setenv("PURCHASE_INVOICE_TIMEOUT_HOURS", "2")
    reset_settings()
    counts = run_jobs(["purchases"])["purchases"]
    assert (counts["checked"], counts["expired"], counts["missing"]) == (2, 1, 1)
    assert purchase(db, old)["status"] == "expired" and purchase(db, young)["status"] == "pending"


def test_plisio_unavailable_is_counted_and_left_for_the_next_run(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    user = make_user(db)
    pid = buy(db, user)
    lost_callbacks.pay(pid, "completed")
    db.execute(AGED)
    with PlisioClient(f"{dead_url()}/api/v1", SECRET, timeout=2, retries=0) as client:
        report = payments.reconcile_pending_purchases(
            db, client, older_than=timedelta(minutes=10), limit=10
        )
    assert (report.checked, report.errors, report.credited) == (1, 1, 0)
    assert purchase(db, pid)["status"] == "pending"
    db.execute("update public.purchases set reconciled_at = null")
    assert reconcile(db, lost_callbacks).credited == 1


def test_a_sibling_invoice_found_by_order_number_is_settled(
    db: Database, lost_callbacks: PlisioEnv
) -> None:
    """The txn id we stored is stale (coin switch): the search by order number finds the
    invoice that holds the money."""
    user = make_user(db)
    pid = buy(db, user)
    lost_callbacks.pay(pid, "completed")
    db.execute(AGED)
    db.execute("update public.purchases set plisio_txn_id = 'ffffffffffffffffffffffff'")
    assert reconcile(db, lost_callbacks).credited == 1
    assert purchase(db, pid)["plisio_txn_id"] != "ffffffffffffffffffffffff"
