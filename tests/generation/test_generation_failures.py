"""Every way a generation can fail after the money moved: each ends in exactly one final
state, refunded exactly once when the user got nothing, never charged or submitted twice."""

from __future__ import annotations

import hashlib
import json
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from izgens import catalog
from tests.generation.conftest import GenEnv
from tests.support.problems import assert_problem
from tests.support.waiting import wait_for

MODERATED = "OutputVideoSensitiveContentDetected.PolicyViolation"


def in_flight(env: GenEnv) -> int:
    row = env.db.one(
        "select count(*) as n from public.generations"
        " where status in ('queued', 'submitted', 'running', 'storing')"
    )
    assert row is not None
    return int(row["n"])


def test_moderation_failure_after_acceptance_refunds_once(env: GenEnv) -> None:
    user = env.user(credits=5_000)
    gen = env.accepted(user, f"a boat [sim:fail={MODERATED}]")
    assert gen["status"] == "submitted"
    failed = env.wait_status(gen["id"], "failed")
    assert failed["error_code"] == MODERATED
    # the provider's retries (and anyone replaying the callback) change nothing
    task = env.sim_task(gen["id"])
    token = parse_qs(urlsplit(task["sim"]["callback_url"]).query)["token"][0]
    for _ in range(3):
        again = env.api.post(
            "/status/callbacks/byteplus",
            params={"token": token},
            json={"id": task["id"], "status": "failed"},
        )
        assert again.status_code == 200
    shown = env.status(user, gen["id"]).json()
    assert shown["status"] == "failed" and shown["error"]["code"] == MODERATED
    assert "video_url" not in shown or shown["video_url"] is None
    assert env.ledger(gen["id"]) == [
        ("generation", -gen["cost"]),
        ("generation_refund", gen["cost"]),
    ]
    assert env.balance(user) == 5_000


def test_create_refused_for_sensitive_input_answers_4xx_with_the_reason_and_refunds(
    env: GenEnv,
) -> None:
    user = env.user(credits=5_000)
    response = env.generate(
        user, "something forbidden [sim:reject=InputTextSensitiveContentDetected]"
    )
    problem = assert_problem(response, 422, "provider_rejected")
    assert problem["provider_code"] == "InputTextSensitiveContentDetected"
    assert "sensitive" in problem["detail"]
    assert env.balance(user) == 5_000
    (row,) = env.db.all("select * from public.generations")
    assert row["status"] == "failed" and row["error_code"] == "InputTextSensitiveContentDetected"
    assert env.ledger(row["id"]) == [
        ("generation", -row["cost"]),
        ("generation_refund", row["cost"]),
    ]
    assert in_flight(env) == 0 and env.sim_tasks() == []
    env.age(row["id"], 3600)
    env.reconcile()
    assert env.row(row["id"])["status"] == "failed" and env.balance(user) == 5_000


def _start_without_provider(env: GenEnv, user_id: uuid.UUID) -> str:
    """A generation admitted by start_generation whose process died before the provider call."""
    plan = catalog.plan(catalog.GenerationSpec(prompt="a crash before the create"))
    document = plan.spec.model_dump() | {"recreated_from": None}
    row = env.db.one(
        "select izgens.start_generation(%s, %s, %s, %s, %s, 0, %s, %s, %s, %s) as r",
        (
            user_id,
            uuid.uuid4().hex,
            hashlib.sha256(json.dumps(document).encode()).hexdigest(),
            json.dumps(document),
            plan.output_tokens,
            "203.0.113.5",
            100,
            100,
            60,
        ),
    )
    assert row is not None and row["r"]["submit"] is True
    return str(row["r"]["generation"]["id"])


@pytest.mark.parametrize(
    ("scenario", "task_created"),
    [
        ("[sim:http=500]", False),  # the provider failed before creating anything
        ("[sim:http-after=500]", True),  # created, but the answer was a 500
        ("[sim:timeout]", True),  # created after our client gave up waiting
        ("crash", False),  # our process died between the debit and the create
    ],
)
def test_an_ambiguous_create_is_reconciled_without_a_second_submission(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch, scenario: str, task_created: bool
) -> None:
    env.lose_callbacks(monkeypatch)  # so reconciliation, not a callback, must end it
    user = env.user(credits=5_000)
    if scenario == "crash":
        gen_id = _start_without_provider(env, user.id)
    else:
        response = env.generate(user, f"a lighthouse at dusk {scenario}")
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "queued"
        gen_id = response.json()["id"]
    cost = int(env.row(gen_id)["cost"])
    assert env.balance(user) == 5_000 - cost
    sent = env.create_requests()

    env.reconcile()  # too recent: left alone
    assert env.row(gen_id)["status"] == "queued"

    if task_created:
        wait_for(
            lambda: [t for t in env.sim_tasks(gen_id) if t["status"] == "succeeded"],
            what="the provider finishing the task",
        )
    env.age(gen_id, 120)  # past the submit lease, inside the window for finding the task
    env.reconcile()
    if task_created:
        done = env.row(gen_id)
        assert done["status"] == "completed", done
        assert done["provider_task_id"] == env.sim_task(gen_id)["id"]
        assert env.ledger(gen_id) == [("generation", -cost)]
        assert env.balance(user) == 5_000 - cost
    else:
        assert env.row(gen_id)["status"] == "queued"
        env.age(gen_id, 600)  # past the window: no task will appear any more
        env.reconcile()
        failed = env.row(gen_id)
        assert failed["status"] == "failed" and failed["error_code"] == "submission_failed"
        assert env.ledger(gen_id) == [("generation", -cost), ("generation_refund", cost)]
        assert env.balance(user) == 5_000
    env.age(gen_id, 3600)
    env.reconcile()
    assert env.create_requests() == sent, "reconciliation submitted the generation again"
    assert len(env.sim_tasks(gen_id)) == (1 if task_created else 0)
    assert in_flight(env) == 0


def test_a_lost_callback_is_caught_by_the_status_read(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user)
    wait_for(lambda: env.sim_task(gen["id"])["status"] == "succeeded", what="the task finishing")
    assert env.status(user, gen["id"]).json()["status"] == "submitted"  # checked moments ago
    env.age(gen["id"], 10)
    shown = env.status(user, gen["id"]).json()
    assert shown["status"] == "completed" and shown["video_url"]
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]


def test_a_lost_callback_and_status_read_are_caught_by_reconciliation(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user, "an expiring task [sim:expire]")
    other = env.accepted(user, "a finished task")
    for g in (gen, other):
        wait_for(lambda g=g: env.sim_task(g["id"])["status"] in ("expired", "succeeded"))
        env.age(g["id"], 120)
    env.reconcile()
    assert env.row(gen["id"])["status"] == "failed"
    assert env.row(other["id"])["status"] == "completed"
    assert env.ledger(gen["id"]) == [
        ("generation", -gen["cost"]),
        ("generation_refund", gen["cost"]),
    ]
    assert env.ledger(other["id"]) == [("generation", -other["cost"])]


def test_a_task_that_appears_after_its_generation_was_refunded_is_canceled(env: GenEnv) -> None:
    user = env.user(credits=5_000)
    response = env.generate(user, "a late task [sim:timeout] [sim:delay=30]")
    gen_id = response.json()["id"]
    assert response.status_code == 202 and env.sim_tasks(gen_id) == []
    env.age(gen_id, 600)  # the window passed and the provider's list shows nothing yet
    env.reconcile()
    assert env.row(gen_id)["status"] == "failed" and env.balance(user) == 5_000
    task = wait_for(lambda: env.sim_tasks(gen_id), what="the late task appearing")[0]
    token = parse_qs(urlsplit(task["sim"]["callback_url"]).query)["token"][0]
    answer = env.api.post(
        "/status/callbacks/byteplus",
        params={"token": token},
        json={"id": task["id"], "status": "queued"},
    )
    assert answer.status_code == 200
    assert env.sim_task(gen_id)["status"] == "cancelled"
    assert env.row(gen_id)["status"] == "failed" and env.row(gen_id)["provider_task_id"] is None
    assert env.ledger(gen_id) == [
        ("generation", -int(env.row(gen_id)["cost"])),
        ("generation_refund", int(env.row(gen_id)["cost"])),
    ]


def test_a_copy_that_died_midway_is_redone_by_reconciliation(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user)
    wait_for(lambda: env.sim_task(gen["id"])["status"] == "succeeded", what="the task finishing")
    # a storer claimed the copy and died before writing anything (so no S3 event either)
    assert env.db.one("select * from izgens.claim_storing(%s)", (gen["id"],)) is not None
    env.reconcile()
    assert env.row(gen["id"])["status"] == "storing"  # its lease still runs
    env.age(gen["id"], 400)
    env.reconcile()
    done = env.row(gen["id"])
    assert done["status"] == "completed" and env.object_exists(done["video_key"])
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
