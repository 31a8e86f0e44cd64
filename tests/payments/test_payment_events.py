"""`izgens.record_payment_event` through `payments.handle_callback`, against a real Postgres:
each rule of a verified Plisio callback, named for what it proves."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from izgens import payments
from izgens.db import Database
from izgens.plisio import InvalidSignature
from tests.payments.support import SECRET, callback_body, events, new_purchase, purchase, sign
from tests.support.users import balance, make_user

STARTER = 500  # credits of the `starter` pack (5.00 USD)


def deliver(db: Database, body: bytes) -> payments.CallbackReport:
    return payments.handle_callback(db, body, secret_key=SECRET)


def purchase_entries(db: Database, purchase_id: uuid.UUID) -> list[dict]:
    return db.all(
        "select * from public.credit_ledger where reason = 'purchase' and ref = %s",
        (str(purchase_id),),
    )


def test_completed_credits_the_pack_once_and_records_the_invoice(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "completed"))
    assert report.credited and not report.duplicate and report.flagged is None
    assert report.status == "completed" and report.purchase_id == pid
    row = purchase(db, pid)
    assert row["status"] == "completed" and row["provider_status"] == "completed"
    assert row["credited_at"] is not None and row["plisio_txn_id"] == "65f0c0ffee000000000000aa"
    assert str(row["paid_amount"]) == "5.00000000" and row["paid_currency"] == "USDT_TRX"
    assert balance(db, user) == STARTER
    [entry] = purchase_entries(db, pid)
    assert entry["delta"] == STARTER and entry["user_id"] == user


def test_replayed_callback_credits_once_and_reports_a_duplicate(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed")
    first, second = deliver(db, body), deliver(db, body)
    assert first.credited and not first.duplicate
    assert second.duplicate and not second.credited and second.event_id == first.event_id
    assert second.status == "completed" and second.purchase_id == pid
    assert len(events(db)) == 1 and balance(db, user) == STARTER


def test_ten_concurrent_deliveries_of_one_completed_callback_credit_once(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed")
    with ThreadPoolExecutor(10) as pool:
        reports = list(pool.map(lambda _: deliver(db, body), range(10)))
    assert sum(r.credited for r in reports) == 1
    assert sum(r.duplicate for r in reports) == 9
    assert len(events(db)) == 1
    assert len(purchase_entries(db, pid)) == 1 and balance(db, user) == STARTER


def _replays(body: bytes, count: int = 20) -> list[bytes]:
    """The same verified fields as `count` different byte strings: keys reordered, other
    spacing, escaped or raw non-ASCII, an upper-case verify_hash, surrounding whitespace."""
    fields = json.loads(body)
    keys = list(fields)
    separators = [(",", ":"), (", ", ": "), (",\n  ", " : ")]
    made = []
    for i in range(count):
        order = keys[i % len(keys) :] + keys[: i % len(keys)]
        if i % 2:
            order.reverse()
        doc = {k: fields[k] for k in order}
        if i % 7 == 3:
            doc["verify_hash"] = doc["verify_hash"].upper()
        text = json.dumps(doc, separators=separators[i % 3], ensure_ascii=i % 4 == 0)
        made.append((" " * (i % 3) + text + "\n" * (i % 2)).encode())
    assert len(set(made)) == count
    return made


def test_a_replay_with_other_bytes_but_the_same_verified_fields_is_a_duplicate(
    db: Database,
) -> None:
    """What was verified identifies the event, not its bytes: 20 replays with keys
    reordered or spacing changed used to be 20 rows, kept for 7 years."""
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed", order_name="500 crédits / €")
    reports = [deliver(db, replay) for replay in _replays(body)]
    assert not reports[0].duplicate and reports[0].credited
    assert all(r.duplicate and not r.credited for r in reports[1:])
    assert {r.event_id for r in reports} == {reports[0].event_id}
    [event] = events(db)
    assert event["payload"] == json.loads(_replays(body)[0])  # the first one, as received
    assert len(purchase_entries(db, pid)) == 1 and balance(db, user) == STARTER


def test_concurrent_replays_with_other_bytes_store_one_event(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    replays = _replays(callback_body(str(pid), "completed"))
    with ThreadPoolExecutor(10) as pool:
        reports = list(pool.map(lambda b: deliver(db, b), replays))
    assert sum(r.credited for r in reports) == 1
    assert sum(not r.duplicate for r in reports) == 1
    assert len(events(db)) == 1 and balance(db, user) == STARTER


def test_the_event_key_is_the_canonical_form_verify_hash_signs(db: Database) -> None:
    """Another field value is another event; the key is the sha256 of exactly what Plisio
    signs (so it never depends on how the bytes were laid out)."""
    import hashlib

    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "pending", confirmations="1")
    deliver(db, body)
    deliver(db, callback_body(str(pid), "pending", confirmations="2"))
    first, second = events(db)
    fields = {k: v for k, v in json.loads(body).items() if k != "verify_hash"}
    canonical = json.dumps(dict(sorted(fields.items())), separators=(",", ":"), ensure_ascii=False)
    assert first["body_sha256"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert first["body_sha256"] != second["body_sha256"]


def test_concurrent_different_paying_events_still_credit_once(db: Database) -> None:
    """completed and mismatch bodies of one order (e.g. confirmations going up) at once."""
    user = make_user(db)
    pid = new_purchase(db, user)
    bodies = [callback_body(str(pid), "completed", confirmations=str(n)) for n in range(6)]
    bodies += [callback_body(str(pid), "mismatch", confirmations=str(n)) for n in range(6)]
    with ThreadPoolExecutor(12) as pool:
        reports = list(pool.map(lambda b: deliver(db, b), bodies))
    assert sum(r.credited for r in reports) == 1
    assert len(events(db)) == 12 and balance(db, user) == STARTER


def test_completed_before_pending_stays_completed(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "completed"))
    late = deliver(db, callback_body(str(pid), "pending", paid="5.000000"))
    assert late.status == "completed" and not late.credited and not late.duplicate
    row = purchase(db, pid)
    assert row["status"] == "completed" and row["provider_status"] == "completed"
    assert balance(db, user) == STARTER and len(events(db)) == 2


@pytest.mark.parametrize("status", ["expired", "cancelled", "error"])
def test_a_closed_unpaid_status_never_overwrites_completed(db: Database, status: str) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "completed"))
    assert deliver(db, callback_body(str(pid), status)).status == "completed"
    assert balance(db, user) == STARTER


def test_late_partial_news_does_not_flag_a_credited_purchase(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "completed"))
    for status, paid in (("expired", "2.000000"), ("mismatch", "1.000000")):
        report = deliver(db, callback_body(str(pid), status, paid=paid))
        assert report.status == "completed" and report.flagged is None
    assert purchase(db, pid)["flagged"] is None and balance(db, user) == STARTER


@pytest.mark.parametrize("status", ["new", "cancelled duplicate"])
def test_new_and_cancelled_duplicate_never_move_the_purchase(db: Database, status: str) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), status))
    assert report.status == "pending" and report.flagged is None and not report.credited
    assert purchase(db, pid)["provider_status"] is None
    deliver(db, callback_body(str(pid), "completed", txn_id="65f0c0ffee000000000000bb"))
    # the coin switch: the abandoned invoice reports `cancelled duplicate` afterwards
    after = deliver(db, callback_body(str(pid), status, confirmations="0"))
    assert after.status == "completed"
    assert purchase(db, pid)["plisio_txn_id"] == "65f0c0ffee000000000000bb"
    assert balance(db, user) == STARTER


def test_pending_then_completed_moves_forward_and_credits(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    pending = deliver(db, callback_body(str(pid), "pending", paid="5.000000"))
    assert pending.status == "pending" and not pending.credited
    assert purchase(db, pid)["provider_status"] == "pending"
    assert deliver(db, callback_body(str(pid), "completed")).credited
    assert balance(db, user) == STARTER


def test_overpaid_mismatch_credits_the_pack(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "mismatch", paid="6.000000"))
    assert report.credited and report.status == "mismatch" and report.flagged is None
    assert str(purchase(db, pid)["paid_amount"]) == "6.00000000"
    assert balance(db, user) == STARTER  # the pack, not the surplus


def test_underpaid_mismatch_credits_nothing_and_is_flagged(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "mismatch", paid="4.000000"))
    assert not report.credited and report.flagged == "underpaid_mismatch"
    row = purchase(db, pid)
    assert row["status"] == "mismatch" and row["flagged"] == "underpaid_mismatch"
    assert row["credited_at"] is None and balance(db, user) == 0
    # Plisio later reports the order paid in full: credited then, and the flag is resolved
    assert deliver(db, callback_body(str(pid), "completed")).credited
    assert purchase(db, pid)["flagged"] is None and balance(db, user) == STARTER


def test_mismatch_without_amounts_falls_back_to_pending_amount(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(
        str(pid), "mismatch", amount="", invoice_total_sum="", invoice_sum="", pending_amount="-1"
    )
    assert deliver(db, body).credited and balance(db, user) == STARTER


def test_expired_with_a_partial_payment_credits_nothing_and_is_flagged(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "expired", paid="2.500000"))
    assert not report.credited and report.flagged == "partial_payment"
    row = purchase(db, pid)
    assert row["status"] == "expired" and row["flagged"] == "partial_payment"
    assert str(row["paid_amount"]) == "2.50000000" and balance(db, user) == 0
    assert events(db)[0]["flagged"] == "partial_payment"


def test_expired_without_money_is_closed_quietly(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "expired"))
    assert report.status == "expired" and report.flagged is None
    assert purchase(db, pid)["flagged"] is None


@pytest.mark.parametrize(
    ("override", "flag"),
    [
        ({"source_currency": "EUR"}, "currency_mismatch"),
        ({"source_currency": ""}, "currency_mismatch"),
        ({"source_amount": "0.50"}, "amount_mismatch"),
        ({"source_amount": "50.00"}, "amount_mismatch"),
        ({"source_amount": "five"}, "amount_mismatch"),
    ],
)
def test_a_callback_that_does_not_fit_the_purchase_is_flagged_and_credits_nothing(
    db: Database, override: dict[str, str], flag: str
) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "completed", **override))
    assert not report.credited and report.flagged == flag and report.status == "pending"
    row = purchase(db, pid)
    assert row["status"] == "pending" and row["flagged"] == flag and row["credited_at"] is None
    assert row["plisio_txn_id"] is None and balance(db, user) == 0
    assert [e["flagged"] for e in events(db)] == [flag]


def test_amounts_are_compared_as_numbers(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    assert deliver(db, callback_body(str(pid), "completed", source_amount="5")).credited


@pytest.mark.parametrize("order", ["1042", "", str(uuid.uuid4()), "'; drop table purchases;--"])
def test_a_verified_callback_for_an_unknown_order_is_stored_and_flagged(
    db: Database, order: str
) -> None:
    report = deliver(db, callback_body(order, "completed"))
    assert report.flagged == "unknown_order" and report.purchase_id is None
    assert report.status is None and not report.credited
    [event] = events(db)
    assert event["purchase_id"] is None and event["flagged"] == "unknown_order"
    assert event["order_number"] == order and event["payload"]["status"] == "completed"


def test_a_txn_id_alone_never_matches_a_purchase(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "pending", paid="1.000000"))
    # same txn id, another order number: not this purchase's money
    report = deliver(db, callback_body("9999", "completed"))
    assert report.flagged == "unknown_order" and balance(db, user) == 0
    assert purchase(db, pid)["status"] == "pending"


def test_a_txn_id_recorded_on_another_purchase_is_flagged(db: Database) -> None:
    user = make_user(db)
    first, second = new_purchase(db, user), new_purchase(db, user)
    deliver(db, callback_body(str(first), "completed"))
    report = deliver(db, callback_body(str(second), "completed"))  # same default txn_id
    assert report.flagged == "txn_conflict" and not report.credited
    assert balance(db, user) == STARTER


def test_an_undocumented_status_is_stored_and_flagged(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "_111"))
    assert report.flagged == "unknown_status" and report.status == "pending"


def test_paid_purchase_of_a_purged_account_is_stored_and_flagged(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    db.execute("delete from auth.users where id = %s", (user,))  # the purge
    assert purchase(db, pid)["user_id"] is None
    report = deliver(db, callback_body(str(pid), "completed"))
    assert report.flagged == "owner_deleted" and not report.credited
    row = purchase(db, pid)
    assert row["status"] == "completed" and row["credited_at"] is None
    assert row["flagged"] == "owner_deleted"
    assert db.all("select * from public.credit_ledger") == []


def test_a_credited_purchase_whose_owner_was_purged_takes_late_callbacks(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "completed"))
    db.execute("delete from auth.users where id = %s", (user,))
    report = deliver(db, callback_body(str(pid), "completed", confirmations="40"))
    assert report.status == "completed" and not report.credited and report.flagged is None


def test_a_late_completed_after_expiry_credits(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    deliver(db, callback_body(str(pid), "expired", paid="2.000000"))
    report = deliver(db, callback_body(str(pid), "completed"))
    assert report.credited and report.status == "completed"
    assert purchase(db, pid)["flagged"] is None and balance(db, user) == STARTER


@pytest.mark.parametrize(
    "body",
    [
        "tampered field",
        "missing hash",
        "wrong key",
        "hash of another body",
        "empty hash",
        "not json",
        "json array",
        "form encoded",
    ],
)
def test_bad_signatures_are_refused_before_anything_is_written(db: Database, body: str) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    raw = bad_body(str(pid), body)
    before = db.round_trips
    with pytest.raises(InvalidSignature):
        deliver(db, raw)
    assert db.round_trips == before
    assert events(db) == [] and purchase(db, pid)["status"] == "pending"


def bad_body(order: str, case: str) -> bytes:
    good = json.loads(callback_body(order, "completed"))
    if case == "tampered field":
        good["source_amount"] = "0.01"
    elif case == "missing hash":
        del good["verify_hash"]
    elif case == "wrong key":
        good["verify_hash"] = sign(good, "another-secret")
    elif case == "hash of another body":
        good["verify_hash"] = json.loads(callback_body(order, "pending"))["verify_hash"]
    elif case == "empty hash":
        good["verify_hash"] = ""
    elif case == "not json":
        return b"status=completed&verify_hash=00"
    elif case == "json array":
        return b"[]"
    elif case == "form encoded":
        from urllib.parse import urlencode

        return urlencode(good).encode()
    return json.dumps(good, separators=(",", ":")).encode()


def test_no_secret_configured_refuses_every_callback(db: Database) -> None:
    with pytest.raises(InvalidSignature):
        payments.handle_callback(db, callback_body("1", "completed"), secret_key="")
    assert events(db) == []


def test_a_verified_callback_is_one_sql_round_trip(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    for body in (
        callback_body(str(pid), "pending", paid="5.000000"),
        callback_body(str(pid), "completed"),
        callback_body(str(pid), "completed"),  # the duplicate
        callback_body("unknown", "completed"),
    ):
        before = db.round_trips
        deliver(db, body)
        assert db.round_trips - before == 1


def test_the_raw_event_is_stored_with_its_signature(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    body = callback_body(str(pid), "completed", order_name="100 crédits / €")
    deliver(db, body)
    [event] = events(db)
    assert event["payload"] == json.loads(body) and event["source"] == "callback"
    assert event["txn_id"] == "65f0c0ffee000000000000aa" and event["status"] == "completed"
    assert SECRET not in json.dumps(event["payload"])


def test_a_nul_character_in_a_verified_body_does_not_fail_the_store(db: Database) -> None:
    user = make_user(db)
    pid = new_purchase(db, user)
    report = deliver(db, callback_body(str(pid), "completed", order_name="a\x00b"))
    assert report.credited


def test_record_payment_event_refuses_bad_arguments(db: Database) -> None:
    from izgens.errors import InvalidRequest

    for args in (
        ("[]", "a" * 64, "callback"),
        ("{}", "not-a-digest", "callback"),
        ("{}", "a" * 64, "browser"),
    ):
        with pytest.raises(InvalidRequest):
            db.one("select izgens.record_payment_event(%s::jsonb, %s, %s)", args)
    assert events(db) == []
