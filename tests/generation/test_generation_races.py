"""At-least-once, out-of-order delivery: the provider's callback and the bucket's S3 event,
each delivered ten times at once and in any order, complete a generation once and charge
it once."""

from __future__ import annotations

import random
import threading
import uuid
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx

from izgens_functions.video_stored.handler import handle_event
from tests.events import load, records
from tests.generation.conftest import GenEnv
from tests.support.mp4 import tiny_mp4
from tests.support.waiting import wait_for


def together(calls: list[Any]) -> list[Any]:
    """Run each call on its own thread, all released at once; returns results in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - reported by the caller's asserts
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def test_the_callback_delivered_ten_times_at_once_completes_and_charges_once(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "a windmill turning [sim:delay=1]")
    task = env.sim_task(gen["id"])
    env.drop_callback(task["id"])  # only our ten deliveries will arrive
    token = parse_qs(urlsplit(task["sim"]["callback_url"]).query)["token"][0]
    wait_for(lambda: env.sim_task(gen["id"])["status"] == "succeeded", what="the task finishing")
    bodies: list[dict[str, Any]] = [
        {"id": task["id"], "status": status}
        for status in ("queued", "running", "running", "succeeded", "succeeded", "succeeded")
    ]
    # lies in the body are ignored: the task is re-read from the provider
    bodies += [
        {"id": task["id"], "status": "failed", "error": {"code": "Forged"}},
        {"id": task["id"], "status": "expired"},
        {"id": "cgt-someone-else", "status": "succeeded"},
        {
            "id": task["id"],
            "status": "succeeded",
            "content": {"video_url": "https://evil.example/x.mp4"},
        },
    ]
    random.shuffle(bodies)
    url = f"{env.stack.dev.base}/status/callbacks/byteplus"

    def post(body: dict[str, Any]) -> int:
        with httpx.Client(timeout=30) as client:
            return client.post(url, params={"token": token}, json=body).status_code

    statuses = together([lambda b=b: post(b) for b in bodies])
    assert statuses == [200] * 10
    done = env.wait_status(gen["id"], "completed")
    assert done["error_code"] is None
    env.settle()
    video_key = f"videos/{user.id}/{gen['id']}.mp4"
    assert env.stack.events.keys().count(video_key) == 1, "the video was copied more than once"
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.balance(user) == 10_000 - gen["cost"]


def test_the_s3_event_delivered_ten_times_at_once_completes_and_charges_once(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "a harbour at night [sim:delay=30]")
    env.drop_callback(env.sim_task(gen["id"])["id"])
    video_key = f"videos/{user.id}/{gen['id']}.mp4"
    data = tiny_mp4()
    # an event that arrives before the generation may complete is ignored, not an error
    encoded = quote(video_key, safe="")  # URL-encoded, `/` as %2F as moto sends it
    early = handle_event(load("s3_object_created", key=encoded, size=len(data)))
    assert early == {"completed": 0, "ignored": 1, "discarded": 0}
    assert env.db.one("select * from izgens.claim_storing(%s)", (gen["id"],)) is not None
    env.storage.client.put_object(
        Bucket=env.storage.bucket, Key=video_key, Body=data, ContentType="video/mp4"
    )
    put = load("s3_object_created", key=encoded, size=len(data))
    multipart = load(
        "s3_object_created",
        key=encoded,
        size=len(data),
        event_name="ObjectCreated:CompleteMultipartUpload",
    )
    via_sqs = load("sqs_s3_object_created", body=put)
    several = records(
        load("s3_object_created", key=f"videos/{uuid.uuid4()}/not-a-generation.txt", size=3),
        load("s3_object_created", key=video_key, size=len(data)),
        load("s3_object_created", key=f"videos/{uuid.uuid4()}/{uuid.uuid4()}.mp4", size=9),
    )
    test_event = load("s3_test_event")
    events = [put, put, multipart, multipart, via_sqs, via_sqs, several, several, test_event, put]
    random.shuffle(events)
    results = together([lambda e=e: handle_event(e) for e in events])
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(r["completed"] for r in results) == 9  # every record naming the video, idempotently
    done = env.row(gen["id"])
    assert done["status"] == "completed" and done["video_key"] == video_key
    assert done["bytes"] == len(data) and done["content_type"] == "video/mp4"
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.balance(user) == 10_000 - gen["cost"]
    completed_at = done["completed_at"]
    env.settle()  # the bucket's own event arrives too, and changes nothing
    assert env.row(gen["id"])["completed_at"] == completed_at
