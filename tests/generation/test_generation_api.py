"""The generate and status routes as a client sees them: deleting in each state, quotes that
are the price charged, idempotent retries, bodies refused before anything is written, and
the round-trip budget (generate: 2 SQL + 1 provider call; a status read: 1 SQL)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from izgens.db import get_database
from tests.generation.conftest import GenEnv, SqlCounter
from tests.support.problems import assert_problem
from tests.support.waiting import wait_for


def test_deleting_a_queued_generation_cancels_and_refunds_it(env: GenEnv) -> None:
    env.sim.config.rpm = 0  # the provider refuses every create: it waits, queued
    user = env.user()
    gen = env.accepted(user)
    assert gen["status"] == "queued"
    assert (
        env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers).status_code == 204
    )
    row = env.row(gen["id"])
    assert row["status"] == "canceled" and row["deleted_at"] is not None
    assert env.ledger(gen["id"]) == [
        ("generation", -gen["cost"]),
        ("generation_refund", gen["cost"]),
    ]
    env.sim.config.rpm = 600
    env.reconcile()  # the dispatcher never sends a canceled generation
    assert env.sim_tasks() == [] and env.balance(user) == 10_000


def test_deleting_a_submitted_generation_cancels_the_task_and_refunds(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "waits in the provider's queue [sim:delay=30]")
    assert gen["status"] == "submitted" and env.sim_task(gen["id"])["status"] == "queued"
    assert (
        env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers).status_code == 204
    )
    assert env.sim_task(gen["id"])["status"] == "cancelled"
    assert env.row(gen["id"])["status"] == "canceled"
    assert env.ledger(gen["id"]) == [
        ("generation", -gen["cost"]),
        ("generation_refund", gen["cost"]),
    ]
    assert_problem(env.status(user, gen["id"]), 404)
    assert env.balance(user) == 10_000


def test_deleting_a_running_generation_keeps_the_charge_and_discards_the_video(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "already being made [sim:delay=2]")
    env.wait_status(gen["id"], "running")
    assert (
        env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers).status_code == 204
    )
    assert_problem(env.status(user, gen["id"]), 404)
    assert env.api.get("/status/generations", headers=user.headers).json()["items"] == []
    done = env.wait_status(gen["id"], "completed")  # the provider cannot stop a running task
    assert done["deleted_at"] is not None
    env.settle()
    assert not env.object_exists(done["video_key"])
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.balance(user) == 10_000 - gen["cost"]


def test_deleting_twice_or_someone_elses_is_not_found(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user)
    env.wait_status(gen["id"], "completed")
    assert (
        env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers).status_code == 204
    )
    assert_problem(env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers), 404)


QUOTED = [
    {},
    {"model": "seedance-1-0-pro-250528", "resolution": "480p", "duration": 12},
    {
        "model": "seedance-1-5-pro-251215",
        "resolution": "1080p",
        "duration": 8,
        "generate_audio": True,
    },
    {
        "model": "dreamina-seedance-2-0-260128",
        "resolution": "1080p",
        "duration": 10,
        "generate_audio": True,
    },
    {"model": "dreamina-seedance-2-0-fast-260128", "resolution": "480p", "duration": 4},
    {"model": "dreamina-seedance-2-5-260628", "resolution": "720p", "duration": 30},
]


def test_the_quote_is_the_price_charged(env: GenEnv) -> None:
    user = env.user(credits=1_000_000)
    for params in QUOTED:
        query = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in params.items()}
        quote = env.api.get("/generate/quote", params=query, headers=user.headers)
        assert quote.status_code == 200, quote.text
        credits = quote.json()["credits"]
        gen = env.accepted(user, "a quoted generation [sim:delay=30]", **params)
        assert gen["cost"] == credits > 0, params
        assert (quote.json()["resolution"], quote.json()["duration"]) == (
            gen["resolution"],
            gen["duration"],
        )
        assert env.ledger(gen["id"]) == [("generation", -credits)]


def test_an_idempotent_retry_returns_the_same_generation_and_charges_once(env: GenEnv) -> None:
    user = env.user()
    key = uuid.uuid4().hex
    first = env.generate(user, "once only", key=key)
    again = env.generate(user, "once only", key=key)
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert env.create_requests() == 1
    assert_problem(env.generate(user, "another body", key=key), 409, "idempotency_conflict")
    assert env.ledger(first.json()["id"]) == [("generation", -first.json()["cost"])]
    assert len(env.db.all("select id from public.generations")) == 1


INVALID: list[tuple[str, dict[str, Any], int]] = [
    ("unknown model", {"model": "seedance-9"}, 422),
    (
        "resolution the model lacks",
        {"model": "seedance-1-0-pro-fast-251015", "resolution": "4k"},
        422,
    ),
    ("duration -1", {"duration": -1}, 422),
    ("duration out of range", {"duration": 60}, 422),
    ("prompt with --duration", {"prompt": "a boat --duration 12"}, 422),
    ("prompt with --rs", {"prompt": "a boat --rs 1080p"}, 422),
    ("string for an int", {"duration": "5"}, 422),
    ("string for a bool", {"generate_audio": "yes"}, 422),
    ("float for an int", {"seed": 1.5}, 422),
    ("extra field", {"watermark": True}, 422),
    ("empty prompt", {"prompt": "   "}, 422),
    ("prompt too long", {"prompt": "x" * 4001}, 422),
    ("seed on a model without seeds", {"model": "dreamina-seedance-2-0-260128", "seed": 7}, 422),
    ("audio on a silent model", {"model": "seedance-1-0-pro-250528", "generate_audio": True}, 422),
    ("unknown ratio", {"ratio": "2:1"}, 422),
    ("too many references", {"reference_keys": [f"references/x/{i}.png" for i in range(10)]}, 422),
]


def test_an_invalid_body_is_refused_and_writes_nothing(env: GenEnv) -> None:
    user = env.user()
    before = env.counts()
    for why, fields, status in INVALID:
        response = env.api.post(
            "/generate/generations",
            json={"prompt": "a paper boat", **fields},
            headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        problem = assert_problem(response, status)
        assert problem.get("detail"), why
        assert "x" * 100 not in response.text, why  # the prompt is never echoed back
        assert env.counts() == before, why
    assert env.create_requests() == 0


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


MALFORMED: list[tuple[str, dict[str, Any]]] = [
    ("missing-idempotency-key", {"json": {"prompt": "no key"}}),
    (
        "idempotency-key-too-long",
        {"json": {"prompt": "long key"}, "headers": {"Idempotency-Key": "k" * 256}},
    ),
    (
        "idempotency-key-with-spaces",
        {"json": {"prompt": "bad key"}, "headers": {"Idempotency-Key": "a b"}},
    ),
    (
        "not-json",
        {"content": b"{not json", "headers": {"Content-Type": "application/json", **_key()}},
    ),
    ("not-an-object", {"json": ["a", "list"], "headers": _key()}),
    ("no-prompt", {"json": {"model": "seedance-1-0-pro-250528"}, "headers": _key()}),
]


def test_a_malformed_request_is_refused_and_writes_nothing(env: GenEnv) -> None:
    user = env.user()
    before = env.counts()
    for why, request_kwargs in MALFORMED:
        kwargs = dict(request_kwargs)
        headers = {**user.headers, **kwargs.pop("headers", {})}
        response = env.api.post("/generate/generations", headers=headers, **kwargs)
        assert 400 <= response.status_code < 500, why
        assert_problem(response, response.status_code)
        assert env.counts() == before, why
    assert env.create_requests() == 0


def test_a_recreate_with_an_invalid_body_is_refused(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user)
    before = env.counts()
    for body in ({"seed": "1"}, {"prompt": "other"}, {"seed": -2}):
        response = env.api.post(
            f"/generate/generations/{gen['id']}/recreate",
            json=body,
            headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert_problem(response, 422)
    assert env.counts() == before


def _counted(
    env: GenEnv, counter: SqlCounter, method: str, path: str, **kwargs: Any
) -> tuple[httpx.Response, int]:
    request_id = f"rt-{uuid.uuid4().hex}"
    headers = {**kwargs.pop("headers", {}), "X-Request-Id": request_id}
    response = env.api.request(method, path, headers=headers, **kwargs)
    return response, counter.of(request_id)


def test_round_trips_generate_two_sql_and_one_create_a_status_read_one_sql(env: GenEnv) -> None:
    user = env.user()
    database = get_database()
    with SqlCounter(database) as counter:
        total_before = database.round_trips
        creates = env.create_requests()
        response, sql = _counted(
            env,
            counter,
            "POST",
            "/generate/generations",
            json={"prompt": "counted [sim:delay=30]"},
            headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 202, response.text
        gen = response.json()
        assert sql == 2, counter.by_request
        assert database.round_trips - total_before >= 2
        assert env.create_requests() - creates == 1

        shown, sql = _counted(
            env, counter, "GET", f"/status/generations/{gen['id']}", headers=user.headers
        )
        assert shown.json()["status"] == "submitted" and sql == 1

        listed, sql = _counted(env, counter, "GET", "/status/generations", headers=user.headers)
        assert listed.status_code == 200 and sql == 1

        quote, sql = _counted(env, counter, "GET", "/generate/quote", headers=user.headers)
        assert quote.status_code == 200 and sql == 1


def test_a_running_generation_is_asked_about_at_most_once_per_interval(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "a long one [sim:delay=4]")
    env.drop_callback(env.sim_task(gen["id"])["id"])
    wait_for(lambda: env.sim_task(gen["id"])["status"] == "running", what="the task running")
    database = get_database()
    with SqlCounter(database) as counter:
        env.age(gen["id"], 10)  # the last check is old: this read asks the provider
        shown, sql = _counted(
            env, counter, "GET", f"/status/generations/{gen['id']}", headers=user.headers
        )
        assert shown.json()["status"] == "running" and sql == 2
        for _ in range(3):  # checked just now: one SQL each, no provider call
            shown, sql = _counted(
                env, counter, "GET", f"/status/generations/{gen['id']}", headers=user.headers
            )
            assert shown.json()["status"] == "running" and sql == 1


def test_a_completed_generation_reads_in_one_round_trip(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user)
    env.wait_status(gen["id"], "completed")
    with SqlCounter(get_database()) as counter:
        shown, sql = _counted(
            env, counter, "GET", f"/status/generations/{gen['id']}", headers=user.headers
        )
    assert shown.json()["video_url"] and sql == 1
