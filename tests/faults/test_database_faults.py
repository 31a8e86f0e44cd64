"""The database failing under the functions: a pooled connection killed in the middle of a
request (`pg_terminate_backend` on the backend serving it) or while idle between requests,
the database unreachable for a moment, and a call failing at one precise step of the
lifecycle. Idempotent calls are retried once on a fresh connection; anything else answers
503 problem+json having changed nothing; the requests after it work."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest

from izgens import catalog, errors
from izgens.config import get_settings, reset_settings
from izgens.db import Database, get_database, reset_database
from izgens.generations import Lifecycle, callback_token
from tests.faults.support import FlakyDatabase, assert_books, settle, wait_provider_idle
from tests.generation.conftest import SIGNING_KEY, GenEnv, User
from tests.payments.support import callback_body, new_purchase
from tests.support.problems import assert_problem
from tests.support.waiting import wait_for

SERVER_POOL = "izgens"  # application_name of the process-wide Database the functions use


def waiting_backend(env: GenEnv, application: str, but: set[int]) -> int | None:
    """A backend of `application` waiting for a lock (a request in the middle of its SQL)."""
    rows = env.db.all(
        "select pid from pg_stat_activity where datname = current_database()"
        " and application_name = %s and wait_event_type = 'Lock'",
        (application,),
    )
    found = [r["pid"] for r in rows if r["pid"] not in but]
    return found[0] if found else None


def terminate(env: GenEnv, pid: int) -> None:
    env.db.one("select pg_terminate_backend(%s)", (pid,))
    wait_for(
        lambda: env.db.one("select 1 as x from pg_stat_activity where pid = %s", (pid,)) is None,
        what=f"backend {pid} gone",
    )


@contextmanager
def profile_locked(env: GenEnv, user: User) -> Iterator[psycopg.Connection]:
    """Another transaction holds the user's profile row: every money call for the user waits
    (the lock is let go when the block ends)."""
    with psycopg.connect(env.db.url) as blocker:
        blocker.execute("select 1 from public.profiles where user_id = %s for update", (user.id,))
        try:
            yield blocker
        finally:
            blocker.rollback()


def killed_midway(env: GenEnv, user: User, call: Callable[[], object], kills: int, app: str):
    """Run `call` while the profile is locked; kill the backend serving it `kills` times
    while it waits (the transaction dies with it), then let it go."""
    killed: set[int] = set()
    with ThreadPoolExecutor(1) as pool, profile_locked(env, user):
        future = pool.submit(call)
        for _ in range(kills):
            pid = wait_for(lambda: waiting_backend(env, app, killed), what="a waiting request")
            terminate(env, pid)
            killed.add(pid)
    return future.result(30)


def test_a_request_whose_connection_is_killed_midway_is_retried_once_and_succeeds(
    env: GenEnv,
) -> None:
    user = env.user(credits=5_000)
    response = killed_midway(env, user, lambda: env.generate(user, "killed once"), 1, SERVER_POOL)
    assert response.status_code == 202, response.text
    gen = response.json()
    assert gen["status"] == "submitted"
    assert env.counts()["generations"] == 1 and len(env.sim_tasks()) == 1
    assert env.balance(user) == 5_000 - gen["cost"]
    # the next requests use a fresh connection
    assert env.status(user, gen["id"]).status_code == 200
    assert env.generate(user, "the next one").status_code == 202
    settle(env)
    assert set(assert_books(env).values()) == {"completed"}


def test_a_request_whose_retry_is_killed_too_answers_503_and_changes_nothing(
    env: GenEnv,
) -> None:
    user = env.user(credits=5_000)
    before = env.counts()
    key = uuid.uuid4().hex
    response = killed_midway(
        env, user, lambda: env.generate(user, "killed twice", key=key), 2, SERVER_POOL
    )
    assert_problem(response, 503, "database_unavailable")
    assert env.counts() == before  # no generation, no ledger entry, no rate-limit hit
    assert env.balance(user) == 5_000 and env.sim_tasks() == []
    # the client's retry with the same key is a first attempt, and it works
    again = env.generate(user, "killed twice", key=key)
    assert again.status_code == 202, again.text
    settle(env)
    assert list(assert_books(env).values()) == ["completed"]


@pytest.mark.parametrize("idempotent", [True, False])
def test_a_killed_call_is_retried_only_when_idempotent(env: GenEnv, idempotent: bool) -> None:
    user = env.user(credits=0)
    victim = Database(env.db.url, size=1, name="izgens-victim")
    try:
        ref = f"grant:{uuid.uuid4()}"

        def grant() -> object:
            try:
                return victim.one(
                    "select izgens.grant_credits(%s, 100, %s) as entry",
                    (user.id, ref),
                    idempotent=idempotent,
                )
            except errors.DatabaseUnavailable as exc:
                return exc

        outcome = killed_midway(env, user, grant, 1, "izgens-victim")
        if idempotent:
            assert not isinstance(outcome, Exception) and victim.round_trips == 2
            assert env.balance(user) == 100
        else:
            assert isinstance(outcome, errors.DatabaseUnavailable) and victim.round_trips == 1
            assert env.balance(user) == 0 and env.ledger(ref) == []  # rolled back with it
            victim.one("select izgens.grant_credits(%s, 100, %s)", (user.id, ref), idempotent=False)
            assert env.balance(user) == 100
    finally:
        victim.close()


def test_pooled_connections_killed_while_idle_are_replaced_without_a_failed_call(
    env: GenEnv,
) -> None:
    user = env.user()
    gen = env.accepted(user)  # the functions' pool now holds idle connections
    idle = env.db.all(
        "select pid from pg_stat_activity where datname = current_database()"
        " and application_name = %s and state = 'idle'",
        (SERVER_POOL,),
    )
    assert idle
    for row in idle:
        terminate(env, row["pid"])
    pool = get_database()
    trips = pool.round_trips
    # a non-idempotent call would have failed on a dead connection: none is used any more
    assert pool.one("select 1 as one", idempotent=False) == {"one": 1}
    assert pool.round_trips == trips + 1
    assert env.status(user, gen["id"]).status_code == 200
    assert env.generate(user, "after the restart").status_code == 202
    settle(env)
    assert_books(env)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def database_at(url: str) -> Iterator[None]:
    """The functions' DATABASE_URL points at `url` until the block ends."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DATABASE_URL", url)
        reset_settings()
        reset_database()
        try:
            yield
        finally:
            reset_database()
    reset_settings()
    reset_database()


def test_the_database_unreachable_answers_503_on_every_function_and_then_recovers(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "reliability-plisio-secret"
    monkeypatch.setenv("PLISIO_SECRET_KEY", secret)
    reset_settings()
    user = env.user()
    gen = env.accepted(user)
    purchase = new_purchase(env.db, user.id)
    token = callback_token(uuid.UUID(gen["id"]), SIGNING_KEY)
    task = env.sim_task(gen["id"])["id"]
    paid = callback_body(str(purchase), "completed", secret=secret)
    idem = {**user.headers, "Idempotency-Key": uuid.uuid4().hex}
    requests: list[tuple[str, str, dict]] = [
        ("POST", "/generate/generations", {"json": {"prompt": "a boat"}, "headers": idem}),
        ("GET", "/generate/quote", {"headers": user.headers}),
        ("GET", "/status/generations", {"headers": user.headers}),
        ("GET", f"/status/generations/{gen['id']}", {"headers": user.headers}),
        ("DELETE", f"/status/generations/{gen['id']}", {"headers": user.headers}),
        ("POST", "/status/callbacks/byteplus", {"params": {"token": token}, "json": {"id": task}}),
        ("GET", "/account/me", {"headers": user.headers}),
        ("POST", "/privacy_export/privacy/exports", {"headers": user.headers}),
        (
            "POST",
            "/plisio_webhook/plisio/callback",
            {"params": {"json": "true"}, "content": paid},
        ),
    ]
    before = env.counts()
    with database_at(f"postgresql://postgres@127.0.0.1:{closed_port()}/izgens"):
        for method, path, kwargs in requests:
            assert_problem(env.api.request(method, path, **kwargs), 503, "database_unavailable")
    assert env.counts() == before
    # back: the same requests work
    for method, path, kwargs in requests:
        if method == "DELETE":
            continue  # (it would delete the video the books check looks for)
        answer = env.api.request(method, path, **kwargs)
        assert answer.status_code < 300, (method, path, answer.text)
    assert env.db.one("select status from public.purchases where id = %s", (purchase,)) == {
        "status": "completed"
    }
    wait_provider_idle(env)
    settle(env)
    assert_books(env)


def test_a_database_that_accepts_but_never_answers_is_a_503_too(env: GenEnv) -> None:
    user = env.user()
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never speaks
    try:
        port = silent.getsockname()[1]
        with database_at(f"postgresql://postgres@127.0.0.1:{port}/izgens"):
            response = env.api.get("/status/generations", headers=user.headers)
        assert_problem(response, 503, "database_unavailable")
    finally:
        silent.close()
    assert env.api.get("/status/generations", headers=user.headers).status_code == 200


def test_the_database_failing_right_after_the_provider_accepted_answers_202(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The debit is done and the task exists; only `mark_submitted` failed. The request
    is not an error: the generation stays queued and its callback (or the job, which finds
    the task in the provider's list) moves it on."""
    user = env.user(credits=5_000)
    flaky = FlakyDatabase(env.db.url, r"izgens\.mark_submitted")
    try:
        life = Lifecycle(get_settings(), flaky)
        gen = life.start(
            user.id,
            catalog.GenerationSpec(prompt="the answer is lost in the database"),
            idempotency_key=uuid.uuid4().hex,
            body_hash="h",
            client_ip="203.0.113.9",
        )
    finally:
        flaky.close()
    assert flaky.failed and gen.status == "queued"
    assert len(env.sim_tasks(gen.id)) == 1
    env.wait_status(str(gen.id), "completed")  # the task's callback marked it submitted
    settle(env)
    assert assert_books(env)[str(gen.id)] == "completed"


def test_the_database_failing_after_the_copy_is_completed_by_the_bucket_event(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user)
    wait_provider_idle(env)
    flaky = FlakyDatabase(env.db.url, r"izgens\.complete_generation")
    try:
        life = Lifecycle(get_settings(), flaky)
        with pytest.raises(errors.DatabaseUnavailable):
            life.refresh(life._reload(uuid.UUID(gen["id"])))
    finally:
        flaky.close()
    assert env.object_exists(env.storage.video_key(user.id, gen["id"]))
    env.wait_status(gen["id"], "completed")  # video_stored, from the bucket's event
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"


def test_a_failed_dispatch_after_a_finished_task_does_not_fail_the_callback(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A finished task frees a provider slot and the next waiting generation is dispatched
    right away; when the database fails at that claim, the transition that was made stands
    and the caller succeeds: the cleanup job dispatches instead."""
    env.lose_callbacks(monkeypatch)
    user = env.user()
    first = env.accepted(user)
    env.sim.config.rpm = 0  # the next one must wait for capacity
    waiting = env.accepted(user, "waits for a slot")
    assert waiting["status"] == "queued"
    env.sim.config.rpm = 600
    wait_provider_idle(env)
    flaky = FlakyDatabase(env.db.url, r"izgens\.claim_submissions")
    try:
        life = Lifecycle(get_settings(), flaky)
        done = life.refresh(life._reload(uuid.UUID(first["id"])))
    finally:
        flaky.close()
    assert flaky.failed and done.status == "completed"
    assert env.row(waiting["id"])["status"] == "queued"
    settle(env)
    assert set(assert_books(env).values()) == {"completed"}
