"""The provider failing at each step a generation takes with it: the create, the task read
(status read, callback, job), the list (how a lost create is found) and the video download.

Each fault is a 500, a 429, a timeout (the proxy never answers; the client gives up after
BYTEPLUS_TIMEOUT_SECONDS) or a dropped connection, injected by a proxy in front of the
simulator. Whatever happens, once the fault is gone and the cleanup jobs have run
(`settle`), every generation is final, charged once, refunded exactly when no video was
delivered, and submitted to the provider at most once.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from izgens import generations
from izgens.cleanup import run_jobs
from tests.faults.proxy import FaultProxy
from tests.faults.support import assert_books, settle, wait_provider_idle
from tests.generation.conftest import GenEnv
from tests.support.mp4 import tiny_mp4
from tests.support.waiting import wait_for

CREATE = r"/contents/generations/tasks$"
READ = r"/contents/generations/tasks/cgt-"
LIST = r"/contents/generations/tasks\?"
VIDEO = r"^/sim/videos/"


def reconcile_now() -> dict[str, Any]:
    result = run_jobs(["generations"], now=True)["generations"]
    assert "error" not in result, result
    return result


@pytest.mark.parametrize(
    ("fault", "outcome"),
    [
        ("500", "no task"),  # answered 500 before creating anything
        ("drop", "no task"),  # the connection died before the request reached the provider
        ("hang", "no task"),  # no answer: our client timed out, nothing was created
        ("drop-after", "task"),  # created, then the connection died before the answer
        ("429", "deferred"),  # at capacity: definitely no task
    ],
)
def test_a_failed_create_ends_final_and_is_never_sent_twice(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fault: str, outcome: str
) -> None:
    env.lose_callbacks(monkeypatch)  # the job, not a callback, must end it
    user = env.user(credits=5_000)
    proxy.fail("POST", CREATE, fault, times=1)
    response = env.generate(user, "a lighthouse at dusk")
    assert response.status_code == 202, response.text
    gen = response.json()
    assert gen["status"] == "queued"
    row = env.row(gen["id"])
    # a definite refusal is a place in the queue; anything else may have created a task
    assert (row["submit_attempted_at"] is None) == (outcome == "deferred")
    assert env.balance(user) == 5_000 - gen["cost"]

    settle(env)

    finals = assert_books(env)
    if outcome == "no task":
        assert finals[gen["id"]] == "failed"
        assert env.row(gen["id"])["error_code"] == "submission_failed"
        assert env.balance(user) == 5_000
    else:
        assert finals[gen["id"]] == "completed"
    sent = proxy.count("POST", CREATE)
    assert sent == (2 if outcome == "deferred" else 1), "the create was sent again"


def test_a_create_answered_after_our_timeout_is_found_and_completed(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider creates the task only after our client gave up (sim:timeout)."""
    env.lose_callbacks(monkeypatch)
    user = env.user(credits=5_000)
    gen = env.generate(user, "a slow provider [sim:timeout]").json()
    assert gen["status"] == "queued" and env.sim_tasks(gen["id"]) == []
    wait_for(lambda: env.sim_tasks(gen["id"]), what="the late task")
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"
    assert proxy.count("POST", CREATE) == 1


@pytest.mark.parametrize("fault", ["500", "429", "drop", "hang"])
def test_a_failing_task_read_changes_nothing_until_the_provider_answers(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user)
    assert gen["status"] == "submitted"
    wait_provider_idle(env)
    proxy.fail("GET", READ, fault)

    env.age(gen["id"], 10)  # the status read asks the provider: it fails, the read does not
    shown = env.status(user, gen["id"])
    assert shown.status_code == 200, shown.text
    assert shown.json()["status"] == "submitted"
    assert proxy.count("GET", READ, fault) == 3  # reads are retried twice, then given up

    env.age(gen["id"], 900)  # the job: the same, and the generation is not failed for it
    assert reconcile_now()["checked"] == 1
    assert env.row(gen["id"])["status"] == "submitted"

    proxy.clear()
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"


def test_a_transient_read_failure_is_retried_within_the_same_request(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    gen = env.accepted(user)
    wait_provider_idle(env)
    proxy.fail("GET", READ, "500", times=1)
    proxy.fail("GET", READ, "drop", times=1)
    env.age(gen["id"], 10)
    shown = env.status(user, gen["id"]).json()
    assert shown["status"] == "completed" and shown["video_url"]
    assert proxy.count("GET", READ) == 3
    assert_books(env)


def test_a_callback_whose_task_cannot_be_read_is_refused_and_the_job_finishes_it(
    env: GenEnv, proxy: FaultProxy
) -> None:
    user = env.user()
    proxy.fail("GET", READ, "500")
    gen = env.accepted(user)
    wait_provider_idle(env)
    env.settle()  # every callback delivered (and retried) by now
    failed = [
        d for d in env.sim.engine.delivery_log() if d["status"] == "succeeded" and not d["ok"]
    ]
    assert failed and {d["outcome"] for d in failed} == {503}  # retried by the provider
    assert env.row(gen["id"])["status"] == "submitted"
    proxy.clear()
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"


@pytest.mark.parametrize("fault", ["500", "429", "drop", "hang"])
def test_a_failing_list_never_fails_a_generation_whose_task_may_exist(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    env.lose_callbacks(monkeypatch)
    user = env.user()
    proxy.fail("POST", CREATE, "drop-after", times=1)  # the task exists, we do not know it
    gen = env.generate(user).json()
    assert gen["status"] == "queued"
    wait_provider_idle(env)
    proxy.fail("GET", LIST, fault)

    env.age(gen["id"], 900)  # past the window: only the list can say whether a task exists
    reconcile_now()
    row = env.row(gen["id"])
    assert row["status"] == "queued" and row["error_code"] is None
    assert proxy.count("GET", LIST, fault) == 3

    proxy.clear()
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"
    assert proxy.count("POST", CREATE) == 1


@pytest.mark.parametrize("fault", ["500", "429", "drop", "truncate", "hang"])
def test_a_failed_video_download_leaves_storing_and_the_job_copies_again(
    env: GenEnv, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    if fault == "hang":  # the copy's read timeout is 30 s; the same path, sooner
        real = httpx.Timeout
        monkeypatch.setattr(httpx, "Timeout", lambda *a, **kw: real(1.0))
    user = env.user()
    proxy.fail("GET", VIDEO, fault)
    gen = env.accepted(user)
    wait_for(lambda: proxy.count("GET", VIDEO, fault), what="the copy being attempted")
    env.settle()  # the callback that started the copy has returned
    row = env.row(gen["id"])
    assert row["status"] == "storing", row
    key = env.storage.video_key(user.id, gen["id"])
    assert not env.object_exists(key), "a failed copy left an object behind"
    assert env.balance(user) == 10_000 - gen["cost"]

    proxy.clear()
    settle(env)
    assert assert_books(env)[gen["id"]] == "completed"
    assert (
        env.storage.client.get_object(Bucket=env.storage.bucket, Key=key)["Body"].read()
        == tiny_mp4()
    )


def test_a_video_that_can_never_be_copied_is_refunded_once_the_provider_dropped_it(
    env: GenEnv, proxy: FaultProxy
) -> None:
    """The copy fails every time (here the video host refuses, as for an expired URL): the
    job retries it while the provider can still serve the video, then fails and refunds
    it, instead of retrying forever."""
    user = env.user()
    proxy.fail("GET", VIDEO, "403")
    gen = env.accepted(user)
    wait_for(lambda: proxy.count("GET", VIDEO), what="the copy being attempted")
    env.settle()
    for _ in range(2):  # a day of failed copies: still trying
        env.age(gen["id"], 12 * 3600)
        assert reconcile_now()["failed_expired"] == 0
        assert env.row(gen["id"])["status"] == "storing"
    env.age(gen["id"], generations.GIVE_UP_AFTER_SECONDS - 24 * 3600 + 1)
    assert reconcile_now()["failed_expired"] == 1
    row = env.row(gen["id"])
    assert row["status"] == "failed" and row["error_code"] == "video_unavailable"
    assert env.balance(user) == 10_000
    assert assert_books(env)[gen["id"]] == "failed"
    assert proxy.count("GET", VIDEO) == 3
