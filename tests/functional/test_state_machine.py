"""Generation state transitions: every illegal move refused, refunds exactly once,
`claim_storing` has exactly one winner."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from izgens import errors
from izgens.db import Database
from tests.support.generations import price, start
from tests.support.users import balance, make_user

STATES = ("queued", "submitted", "running", "storing", "completed", "failed", "canceled")


def new_generation(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    user = make_user(db, credits=price(db))
    return user, uuid.UUID(start(db, user)["generation"]["id"])


def drive_to(db: Database, gen: uuid.UUID, state: str) -> None:
    """Move a fresh generation to `state` through the legal path."""
    path = {
        "queued": [],
        "submitted": ["submit"],
        "running": ["submit", "run"],
        "storing": ["submit", "run", "store"],
        "completed": ["submit", "run", "store", "complete"],
        "failed": ["fail"],
        "canceled": ["cancel"],
    }[state]
    for step in path:
        db.one(TRANSITIONS[step], (gen,))


TRANSITIONS = {
    "submit": "select * from izgens.mark_submitted(%s, 'cgt-' || gen_random_uuid())",
    "run": "select * from izgens.mark_running(%s)",
    "store": "select * from izgens.claim_storing(%s)",
    "complete": "select * from izgens.complete_generation(%s, 'videos/x.mp4', 'etag', 100, 'video/mp4')",
    "fail": "select * from izgens.fail_generation(%s, 'code', 'msg')",
    "cancel": "select * from izgens.cancel_generation(%s, 'by user')",
}

# (from, transition) pairs that must be refused with InvalidTransition
ILLEGAL = [
    ("queued", "run"),
    ("queued", "complete"),
    ("submitted", "complete"),
    ("running", "complete"),
    ("running", "cancel"),
    ("storing", "cancel"),
    ("completed", "fail"),
    ("completed", "cancel"),
    ("failed", "submit"),
    ("failed", "run"),
    ("failed", "complete"),
    ("failed", "cancel"),
    ("canceled", "submit"),
    ("canceled", "run"),
    ("canceled", "complete"),
    ("canceled", "fail"),
]


def status(db: Database, gen: uuid.UUID) -> str:
    row = db.one("select status from public.generations where id = %s", (gen,))
    assert row is not None
    return str(row["status"])


@pytest.mark.parametrize(("state", "move"), ILLEGAL)
def test_illegal_transitions_are_refused(db: Database, state: str, move: str) -> None:
    user, gen = new_generation(db)
    drive_to(db, gen, state)
    before = balance(db, user)
    with pytest.raises(errors.InvalidTransition):
        db.one(TRANSITIONS[move], (gen,))
    assert status(db, gen) == state
    assert balance(db, user) == before


@pytest.mark.parametrize("state", ["completed", "failed", "canceled", "storing", "queued"])
def test_claim_storing_only_from_in_flight_states(db: Database, state: str) -> None:
    _, gen = new_generation(db)
    drive_to(db, gen, state)
    assert db.one(TRANSITIONS["store"], (gen,)) is None
    assert status(db, gen) == state


def test_legal_path_to_completed_charges_once(db: Database) -> None:
    user, gen = new_generation(db)
    drive_to(db, gen, "completed")
    assert status(db, gen) == "completed"
    assert balance(db, user) == 0
    # duplicate news after completion changes nothing
    db.one(TRANSITIONS["run"], (gen,))
    db.one(TRANSITIONS["complete"], (gen,))
    assert status(db, gen) == "completed"


def test_failure_refunds_exactly_once(db: Database) -> None:
    user, gen = new_generation(db)
    drive_to(db, gen, "running")
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(lambda _: db.one(TRANSITIONS["fail"], (gen,)), range(10)))
    assert status(db, gen) == "failed"
    assert balance(db, user) == price(db)
    with pytest.raises(errors.InvalidTransition):
        db.one(TRANSITIONS["cancel"], (gen,))
    assert balance(db, user) == price(db)
    refunds = db.all(
        "select count(*) as n from public.credit_ledger where reason = 'generation_refund' and ref = %s",
        (str(gen),),
    )
    assert refunds[0]["n"] == 1


def test_cancel_and_fail_racing_refund_once(db: Database) -> None:
    user, gen = new_generation(db)
    drive_to(db, gen, "submitted")

    def race(i: int) -> str:
        try:
            db.one(TRANSITIONS["cancel" if i % 2 else "fail"], (gen,))
            return "ok"
        except errors.InvalidTransition:
            return "refused"

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(race, range(16)))
    assert status(db, gen) in ("failed", "canceled")
    assert balance(db, user) == price(db)


def test_claim_storing_has_exactly_one_winner(db: Database) -> None:
    _, gen = new_generation(db)
    drive_to(db, gen, "running")
    with ThreadPoolExecutor(20) as pool:
        wins = list(pool.map(lambda _: db.one(TRANSITIONS["store"], (gen,)), range(20)))
    assert sum(1 for w in wins if w is not None) == 1
    assert status(db, gen) == "storing"


def test_a_dead_storer_is_replaced_after_its_lease(db: Database) -> None:
    _, gen = new_generation(db)
    drive_to(db, gen, "storing")
    assert db.one(TRANSITIONS["store"], (gen,)) is None
    db.execute(
        "update public.generations set storing_lease_until = now() - interval '1 second' where id = %s",
        (gen,),
    )
    assert db.one(TRANSITIONS["store"], (gen,)) is not None


def test_mark_submitted_replay_and_conflict(db: Database) -> None:
    _, gen = new_generation(db)
    first = db.one("select * from izgens.mark_submitted(%s, 'cgt-1')", (gen,))
    again = db.one("select * from izgens.mark_submitted(%s, 'cgt-1')", (gen,))
    assert first is not None and again is not None
    assert first["provider_task_id"] == again["provider_task_id"] == "cgt-1"
    with pytest.raises(errors.InvalidTransition):
        db.one("select * from izgens.mark_submitted(%s, 'cgt-2')", (gen,))


def test_unknown_generation_is_not_found(db: Database) -> None:
    with pytest.raises(errors.NotFound):
        db.one(TRANSITIONS["fail"], (uuid.uuid4(),))


def test_submission_leases_keep_arrival_order(db: Database) -> None:
    cost = price(db)
    user = make_user(db, credits=cost * 4)
    first = start(db, user)
    assert first["submit"] is True
    # the provider had no capacity: the first goes back to the queue
    db.one("select * from izgens.defer_submission(%s)", (first["generation"]["id"],))
    second = start(db, user)
    assert second["submit"] is False  # something older waits: keep the order
    claimed = db.all("select id from izgens.claim_submissions(10)")
    assert [str(r["id"]) for r in claimed] == [
        first["generation"]["id"],
        second["generation"]["id"],
    ]
    assert db.all("select id from izgens.claim_submissions(10)") == []
