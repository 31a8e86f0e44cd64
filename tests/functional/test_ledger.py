"""The money core against a real Postgres: each rule under concurrency and replays."""

from __future__ import annotations

import json
import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from izgens import credits, errors
from izgens.db import Database
from tests.support.generations import TOKENS, price, spec, start
from tests.support.users import balance, make_user


def test_price_follows_the_token_formula(db: Database) -> None:
    # 103 818 tokens x $1.0/M x margin 1.5 / $0.01 per credit = 15.57 -> 16 credits
    assert price(db) == 16


def test_concurrent_spends_never_overdraw(db: Database) -> None:
    cost = price(db)
    funded_for = 10
    user = make_user(db, credits=cost * funded_for)

    def attempt(i: int) -> str:
        try:
            start(db, user)
            return "ok"
        except errors.InsufficientCredits:
            return "refused"

    with ThreadPoolExecutor(32) as pool:
        outcomes = list(pool.map(attempt, range(32)))
    assert outcomes.count("ok") == funded_for
    assert outcomes.count("refused") == 32 - funded_for
    assert balance(db, user) == 0
    rows = db.all("select count(*) as n from public.generations where user_id = %s", (user,))
    assert rows[0]["n"] == funded_for


def test_operator_debits_in_parallel_stop_at_zero(db: Database) -> None:
    user = make_user(db, credits=25)

    def debit(i: int) -> bool:
        try:
            credits.debit(db, user, 1, f"debit-{i}")
            return True
        except errors.InsufficientCredits:
            return False

    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(debit, range(40)))
    assert results.count(True) == 25
    assert balance(db, user) == 0


def test_mixed_grants_spends_and_refunds_keep_the_books(db: Database) -> None:
    cost = price(db)
    user = make_user(db, credits=cost * 5)
    granted = threading.Lock()
    totals = {"granted": cost * 5, "spent": 0, "refunded": 0}
    rng = random.Random(7)
    plan = [rng.choice(["grant", "spend", "spend", "spend_and_fail"]) for _ in range(120)]

    def act(i: int) -> None:
        kind = plan[i]
        if kind == "grant":
            credits.grant(db, user, 7, f"mix-grant-{i}")
            with granted:
                totals["granted"] += 7
            return
        try:
            result = start(db, user)
        except errors.InsufficientCredits:
            return
        with granted:
            totals["spent"] += cost
        if kind == "spend_and_fail":
            db.one(
                "select izgens.fail_generation(%s, 'test', 'boom')", (result["generation"]["id"],)
            )
            with granted:
                totals["refunded"] += cost

    with ThreadPoolExecutor(32) as pool:
        list(pool.map(act, range(len(plan))))
    expected = totals["granted"] - totals["spent"] + totals["refunded"]
    assert balance(db, user) == expected
    assert credits.mismatches(db) == []


def test_same_idempotency_key_from_20_threads_creates_one_generation(db: Database) -> None:
    cost = price(db)
    user = make_user(db, credits=cost * 20)
    key = "click-" + uuid.uuid4().hex

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(lambda _: start(db, user, key), range(20)))
    ids = {r["generation"]["id"] for r in results}
    assert len(ids) == 1
    assert sum(1 for r in results if r["created"]) == 1
    assert balance(db, user) == cost * 19
    debits = db.all(
        "select count(*) as n from public.credit_ledger where user_id = %s and reason = 'generation'",
        (user,),
    )
    assert debits[0]["n"] == 1


def test_same_key_with_another_body_is_a_conflict(db: Database) -> None:
    cost = price(db)
    user = make_user(db, credits=cost * 3)
    start(db, user, "k1", spec("first"))
    with pytest.raises(errors.IdempotencyConflict):
        start(db, user, "k1", spec("second"))
    assert balance(db, user) == cost * 2


def test_insufficient_credits_has_no_side_effects(db: Database) -> None:
    user = make_user(db, credits=3)
    with pytest.raises(errors.InsufficientCredits) as info:
        start(db, user)
    assert info.value.balance == 3 and info.value.required == price(db)
    assert balance(db, user) == 3
    assert db.all("select id from public.generations where user_id = %s", (user,)) == []
    assert len(db.all("select id from public.credit_ledger where user_id = %s", (user,))) == 1


@pytest.mark.parametrize(
    ("setup", "error"),
    [
        (
            "update public.profiles set age_confirmed_at = null where user_id = %s",
            errors.AgeNotConfirmed,
        ),
        ("update public.profiles set blocked_at = now() where user_id = %s", errors.AccountBlocked),
        (
            "insert into public.deletion_requests (user_id, scheduled_for) values (%s, now() + interval '3 days')",
            errors.DeletionPending,
        ),
    ],
)
def test_account_gates_refuse_without_side_effects(db: Database, setup: str, error: type) -> None:
    user = make_user(db, credits=100)
    db.execute(setup, (user,))
    with pytest.raises(error):
        start(db, user)
    assert balance(db, user) == 100
    assert db.all("select id from public.generations where user_id = %s", (user,)) == []


def test_user_rate_limit_admits_exactly_the_limit_under_concurrency(db: Database) -> None:
    cost = price(db)
    user = make_user(db, credits=cost * 40)
    body = json.dumps(spec())

    def attempt(i: int) -> str:
        try:
            db.one(
                "select izgens.start_generation(%s, %s, 'h', %s, %s, 0, null, 5, 100, 60)",
                (user, f"rl-{i}", body, TOKENS),
                idempotent=False,
            )
            return "ok"
        except errors.RateLimited as exc:
            assert exc.retry_after >= 1
            return "limited"

    with ThreadPoolExecutor(24) as pool:
        outcomes = list(pool.map(attempt, range(24)))
    # a window boundary may fall inside the burst; never more than the limit per window
    windows = db.all(
        "select hits from public.rate_limits where bucket = %s", (f"generate:user:{user}",)
    )
    assert all(w["hits"] <= 5 for w in windows)
    assert outcomes.count("ok") == sum(w["hits"] for w in windows)
    assert balance(db, user) == cost * (40 - outcomes.count("ok"))


def test_replayed_grant_ref_applies_once(db: Database) -> None:
    user = make_user(db)
    with ThreadPoolExecutor(10) as pool:
        entries = list(pool.map(lambda _: credits.grant(db, user, 50, "promo-2026"), range(10)))
    assert {e.id for e in entries} == {entries[0].id}
    assert balance(db, user) == 50
    with pytest.raises(errors.IdempotencyConflict):
        credits.grant(db, user, 60, "promo-2026")


def test_ledger_check_reports_a_tampered_balance(db: Database) -> None:
    user = make_user(db, credits=10)
    assert credits.mismatches(db) == []
    db.execute("update public.profiles set balance = 11 where user_id = %s", (user,))
    found = credits.mismatches(db)
    assert [(m.user_id, m.balance, m.ledger_sum) for m in found] == [(user, 11, 10)]
    db.execute("update public.profiles set balance = 10 where user_id = %s", (user,))


def test_balance_can_never_go_negative_even_by_hand(db: Database) -> None:
    import psycopg

    user = make_user(db)
    with pytest.raises(psycopg.errors.CheckViolation):
        db.execute("update public.profiles set balance = -1 where user_id = %s", (user,))
