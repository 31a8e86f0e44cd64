"""The process dying between the debit (`start_generation`) and the provider's answer: before
the create is sent (no task), or after it was sent (a task nobody recorded). A retry by the
client with the same Idempotency-Key neither charges nor submits again; reconciliation finds
the task, or fails and refunds once the window has passed."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest

from izgens import catalog
from izgens.byteplus import BytePlusClient
from izgens.config import get_settings
from izgens.db import get_database
from izgens.generations import Lifecycle, request_hash
from tests.faults.support import ProcessDied, ProcessDyingTransport, assert_books, settle
from tests.generation.conftest import API_KEY, GenEnv


def test_admitted_by_sql_and_never_submitted(env: GenEnv) -> None:
    """The process died right after `start_generation` committed."""
    user = env.user(credits=5_000)
    plan = catalog.plan(catalog.GenerationSpec(prompt="died after the debit"))
    document = plan.spec.model_dump() | {"recreated_from": None}
    row = env.db.one(
        "select izgens.start_generation(%s, %s, %s, %s, %s, 0, null, 100, 100, 60) as r",
        (
            user.id,
            uuid.uuid4().hex,
            hashlib.sha256(json.dumps(document).encode()).hexdigest(),
            json.dumps(document),
            plan.output_tokens,
        ),
    )
    assert row is not None and row["r"]["submit"] is True
    gen_id = row["r"]["generation"]["id"]
    assert env.balance(user) < 5_000
    settle(env)
    assert assert_books(env)[gen_id] == "failed"
    assert env.row(gen_id)["error_code"] == "submission_failed"
    assert env.balance(user) == 5_000 and env.create_requests() == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_process_dies_around_the_create(
    env: GenEnv, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    env.lose_callbacks(monkeypatch)  # a task created "after" is found by the job's list
    user = env.user(credits=5_000)
    provider = BytePlusClient(env.sim.api_url, API_KEY, transport=ProcessDyingTransport(when))
    life = Lifecycle(get_settings(), get_database(), provider=provider)
    spec = catalog.GenerationSpec(prompt="a crash around the create")
    key = uuid.uuid4().hex
    try:
        with pytest.raises(ProcessDied):
            life.start(
                user.id,
                spec,
                idempotency_key=key,
                body_hash=request_hash(spec.model_dump(exclude_unset=True)),
                client_ip="203.0.113.40",
            )
    finally:
        provider.close()
    (row,) = env.db.all("select * from public.generations")
    assert row["status"] == "queued" and row["submit_attempted_at"] is not None
    assert len(env.sim_tasks()) == (1 if when == "after" else 0)
    charged = 5_000 - env.balance(user)
    assert charged == row["cost"]

    # the client saw an error and retries with the same key: the same generation, as is
    retry = env.generate(user, "a crash around the create", key=key)
    assert retry.status_code == 202, retry.text
    assert retry.json()["id"] == str(row["id"]) and retry.json()["status"] == "queued"
    assert env.balance(user) == 5_000 - charged

    settle(env)
    outcome = assert_books(env)[str(row["id"])]
    assert outcome == ("completed" if when == "after" else "failed")
    assert env.create_requests() == (1 if when == "after" else 0), "submitted again"
