"""When the provider is at capacity (429: requests per minute, or its queued-task cap) a
generation is accepted and waits, queued; the dispatcher submits the waiting ones later in
order of arrival, each exactly once. Nothing waits forever: one that waited longer than
GENERATION_MAX_WAIT_MINUTES is failed (`capacity_timeout`) and refunded exactly once."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from izgens.config import reset_settings
from izgens.generations import Lifecycle
from tests.generation.conftest import GenEnv
from tests.support.waiting import wait_for


def provider_order(env: GenEnv) -> list[str]:
    """Generation ids in the order their tasks were created at the provider."""
    with env.sim.engine._lock:
        tasks = sorted(env.sim.engine.tasks.values(), key=lambda t: t.seq)
        idents = [t.safety_identifier or "" for t in tasks]
    return [str(uuid.UUID(hex=ident.rsplit("-", 1)[-1])) for ident in idents]


@pytest.mark.parametrize(
    "limit",
    # tasks wait 20 s in the provider's queue: the cap of two is reached, and no task
    # finishes during the test (a finished task dispatches the queue itself, which would
    # race the test's own reconcile() for the counts asserted here)
    ["rpm", "max_queued"],
)
def test_capacity_refusals_queue_and_dispatch_in_arrival_order(env: GenEnv, limit: str) -> None:
    prompt = "a kite over a beach [sim:delay=20]"
    setattr(env.sim.config, limit, 2)
    users = [env.user(), env.user()]
    gens = [env.accepted(users[i % 2], f"{prompt} #{i}") for i in range(5)]
    assert [g["status"] for g in gens] == ["submitted", "submitted", "queued", "queued", "queued"]
    # one refused create for the third; the later ones queue behind it without asking
    assert env.create_requests() == 3
    assert provider_order(env) == [g["id"] for g in gens[:2]]
    for g in gens[2:]:
        row = env.row(g["id"])
        assert row["submit_attempted_at"] is None and row["error_code"] is None
    charged = sum(g["cost"] for g in gens)
    assert sum(env.balance(u) for u in users) == 2 * 10_000 - charged

    env.reconcile()  # still at capacity: nothing moves, nothing fails
    assert [env.row(g["id"])["status"] for g in gens[2:]] == ["queued"] * 3
    assert env.create_requests() == 4

    setattr(env.sim.config, limit, 120 if limit == "max_queued" else 600)
    result = env.reconcile()
    assert result["dispatched"] == 3
    assert provider_order(env) == [g["id"] for g in gens]
    for g in gens:
        assert len(env.sim_tasks(g["id"])) == 1
        assert env.row(g["id"])["status"] in ("submitted", "running", "storing", "completed")
    before = env.create_requests()
    for _ in range(2):
        env.reconcile()
    assert env.create_requests() == before, "a dispatched generation was submitted again"
    assert sum(env.balance(u) for u in users) == 2 * 10_000 - charged


def test_the_dispatcher_stops_at_the_first_refusal_and_keeps_the_order(env: GenEnv) -> None:
    env.sim.config.rpm = 1
    user = env.user()
    gens = [env.accepted(user, f"lanterns #{i}") for i in range(5)]
    assert [g["status"] for g in gens] == ["submitted"] + ["queued"] * 4
    env.sim.config.rpm = 3  # room for two more this minute
    assert env.reconcile()["dispatched"] == 2
    assert [env.row(g["id"])["status"] != "queued" for g in gens] == [True] * 3 + [False] * 2
    env.sim.config.rpm = 600
    env.reconcile()
    assert provider_order(env) == [g["id"] for g in gens]
    for g in gens:
        env.wait_status(g["id"], "completed")
    assert env.balance(user) == 10_000 - sum(g["cost"] for g in gens)


def test_a_slot_freed_by_a_finished_task_dispatches_the_next_waiting(env: GenEnv) -> None:
    env.sim.config.max_queued = 1
    user = env.user()
    first = env.accepted(user, "a short one [sim:delay=3]")
    waiting = env.accepted(user, "waits its turn")
    assert waiting["status"] == "queued"
    env.sim.config.max_queued = 120
    # the first task's success callback frees a slot: the waiting one goes, no job needed
    env.wait_status(first["id"], "completed")
    env.wait_status(waiting["id"], "submitted", "running", "storing", "completed")
    assert len(env.sim_tasks(waiting["id"])) == 1


def test_concurrent_dispatchers_never_submit_a_generation_twice(env: GenEnv) -> None:
    env.sim.config.rpm = 0
    user = env.user()
    gens = [env.accepted(user, f"fireflies #{i}") for i in range(8)]
    assert all(g["status"] == "queued" for g in gens)
    env.sim.config.rpm = 600
    life = Lifecycle.from_settings()
    barrier = threading.Barrier(4)

    def dispatch() -> int:
        barrier.wait()
        return life.dispatch(20)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(dispatch())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(results) == 8
    for g in gens:
        assert len(env.sim_tasks(g["id"])) == 1
    assert sorted(provider_order(env)) == sorted(g["id"] for g in gens)
    wait_for(lambda: all(env.row(g["id"])["status"] == "completed" for g in gens), 20)
    assert env.balance(user) == 10_000 - sum(g["cost"] for g in gens)


def test_a_generation_waiting_past_the_limit_is_failed_and_refunded_exactly_once(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider answering 429 for hours (or a used-up trial quota): after 30 minutes of
    waiting a generation ends, failed with a clear code and its credits back, once, however
    many reconciliations race; a younger one keeps its place."""
    env.sim.config.rpm = 1
    user = env.user()
    first = env.accepted(user, "the one that got in")
    old, young, newest = (env.accepted(user, f"waits #{i}") for i in range(3))
    assert [g["status"] for g in (old, young, newest)] == ["queued"] * 3
    env.age(old["id"], 31 * 60)
    env.age(young["id"], 29 * 60)

    with ThreadPoolExecutor(4) as pool:
        barrier = threading.Barrier(4)

        def run(_: int) -> dict[str, int]:
            barrier.wait()
            return env.reconcile()

        rounds = list(pool.map(run, range(4)))
    rounds.append(env.reconcile())  # a claimed-then-deferred one is failed by a later run
    assert sum(r["failed_waiting"] for r in rounds) == 1, rounds

    failed = env.row(old["id"])
    assert failed["status"] == "failed" and failed["error_code"] == "capacity_timeout"
    assert "30 minutes" in failed["error_message"]
    assert env.ledger(old["id"]) == [
        ("generation", -old["cost"]),
        ("generation_refund", old["cost"]),
    ]
    for gen in (young, newest):
        assert env.row(gen["id"])["status"] == "queued"
        assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.sim_tasks(old["id"]) == []  # never sent
    assert env.balance(user) == 10_000 - first["cost"] - young["cost"] - newest["cost"]
    seen = env.status(user, old["id"]).json()
    assert seen["status"] == "failed" and seen["error"]["code"] == "capacity_timeout"

    # the limit is a setting: at 20 minutes the younger one has waited too long as well
    monkeypatch.setenv("GENERATION_MAX_WAIT_MINUTES", "20")
    reset_settings()
    assert env.reconcile()["failed_waiting"] == 1
    assert env.row(young["id"])["error_code"] == "capacity_timeout"
    assert env.row(newest["id"])["status"] == "queued"


def test_the_wait_limit_sql_refunds_once_under_concurrency(env: GenEnv) -> None:
    env.sim.config.rpm = 0
    user = env.user()
    gens = [env.accepted(user, f"stars #{i}") for i in range(6)]
    for gen in gens:
        env.age(gen["id"], 3600)
    barrier = threading.Barrier(8)

    def expire(_: int) -> int:
        barrier.wait()
        return len(env.db.all("select id from izgens.fail_waiting_generations(1800, 100)"))

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(expire, range(8))) == 6
    for gen in gens:
        assert env.ledger(gen["id"]) == [
            ("generation", -gen["cost"]),
            ("generation_refund", gen["cost"]),
        ]
    assert env.balance(user) == 10_000


def test_the_dispatcher_sends_nothing_into_a_queue_it_knows_is_full(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A create into the provider's full queue is refused and still spends the per-minute
    budget: with BYTEPLUS_MAX_QUEUED generations queued at the provider, the dispatcher
    claims none, and a generation that leaves the provider's queue (running) makes room for
    exactly the next one, in arrival order."""
    monkeypatch.setenv("BYTEPLUS_MAX_QUEUED", "2")
    reset_settings()
    env.sim.config.max_running = 0  # the provider runs nothing yet: tasks stay queued there
    env.sim.config.rpm = 2  # the third create is refused, so the rest wait in our queue
    user = env.user()
    gens = [env.accepted(user, f"a slow tide #{i} [sim:delay=30]") for i in range(5)]
    assert [g["status"] for g in gens] == ["submitted"] * 2 + ["queued"] * 3
    assert env.create_requests() == 3

    env.sim.config.rpm = 600
    for _ in range(2):
        assert env.reconcile()["dispatched"] == 0
    assert env.create_requests() == 3, "the dispatcher probed a queue it knows is full"

    env.sim.config.max_running = 1  # one task starts: its `running` callback frees a place
    wait_for(lambda: env.row(gens[2]["id"])["status"] == "submitted", 10)
    assert env.row(gens[0]["id"])["status"] == "running"
    assert [env.row(g["id"])["status"] for g in gens[3:]] == ["queued", "queued"]
    assert env.create_requests() == 4

    monkeypatch.setenv("BYTEPLUS_MAX_QUEUED", "120")
    reset_settings()
    assert env.reconcile()["dispatched"] == 2
    assert provider_order(env) == [g["id"] for g in gens]
    assert env.create_requests() == 6
    assert env.balance(user) == 10_000 - sum(g["cost"] for g in gens)
