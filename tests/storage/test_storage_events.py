"""S3 → SQS → handler, the dev stack's stand-in for the bucket's ObjectCreated → video_stored
event, plus the event parser on recorded shapes (moto's and real AWS's)."""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from izgens.storage import ObjectCreated, Storage
from izgens_local.s3 import LocalS3, SqsEventPump
from tests.events import load, records
from tests.support.mp4 import tiny_mp4

from .conftest import VideoHost


class Inbox:
    """What the pump delivered, in order."""

    def __init__(self) -> None:
        self.bodies: queue.Queue[dict[str, Any]] = queue.Queue()

    def __call__(self, body: dict[str, Any]) -> None:
        self.bodies.put(body)

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.bodies.get(timeout=timeout)

    def created(self, count: int, timeout: float = 10.0) -> list[ObjectCreated]:
        found: list[ObjectCreated] = []
        while len(found) < count:
            found.extend(Storage.iter_object_created(self.next(timeout)))
        return found


@pytest.fixture
def events_queue(local_s3: LocalS3, storage: Storage) -> Iterator[str]:
    """A fresh queue wired to the bucket for this test (so tests never see each other's
    events); the session queue is wired back afterwards."""
    client = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=local_s3.region
    ).client("sqs", endpoint_url=local_s3.endpoint_url)
    url = client.create_queue(QueueName=f"events-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    storage.configure_video_notifications(arn)
    try:
        yield url
    finally:
        storage.configure_video_notifications(local_s3.queue_arn)
        client.delete_queue(QueueUrl=url)


@pytest.fixture
def inbox(local_s3: LocalS3, events_queue: str) -> Iterator[Inbox]:
    box = Inbox()
    with SqsEventPump(events_queue, local_s3.endpoint_url, box, region=local_s3.region):
        yield box


def test_the_test_event_comes_first_and_is_skipped(inbox: Inbox) -> None:
    body = inbox.next()
    assert body.get("Event") == "s3:TestEvent" and "Records" not in body
    assert list(Storage.iter_object_created(body)) == []


def test_a_stored_video_reaches_the_handler_with_a_decoded_key(
    storage: Storage, s3: Any, inbox: Inbox, user_id: str
) -> None:
    generation = str(uuid.uuid4())
    key = storage.video_key(user_id, generation)
    s3.put_object(Bucket=storage.bucket, Key=f"references/{user_id}/x.png", Body=b"no event")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=tiny_mp4(), ContentType="video/mp4")
    inbox.next()  # the TestEvent

    body = inbox.next()
    raw_key = body["Records"][0]["s3"]["object"]["key"]
    assert raw_key != key and "%2F" in raw_key  # moto encodes the slashes
    (created,) = list(Storage.iter_object_created(body))
    assert created.key == key and created.size == 980
    assert created.event_name == "ObjectCreated:Put"
    assert created.etag == storage.head(key).etag  # type: ignore[union-attr]
    assert Storage.parse_video_key(created.key) == (user_id, generation)
    with pytest.raises(queue.Empty):  # the references/ put raised no event
        inbox.next(timeout=1.5)


def test_a_multipart_copy_yields_duplicate_events_with_one_etag(
    storage: Storage, inbox: Inbox, video_host: VideoHost, user_id: str
) -> None:
    """moto sends Put and CompleteMultipartUpload for one upload; both parse, same (key, eTag),
    so an idempotent consumer does its work once."""
    key = storage.video_key(user_id, uuid.uuid4())
    size = storage.part_size + 1000
    info = storage.copy_from_url(
        f"{video_host.base}/blob?size={size}",
        key,
        allowed_hosts=video_host.allowed,
        max_bytes=size,
    )
    inbox.next()  # the TestEvent
    events = inbox.created(2)
    assert {e.key for e in events} == {key}
    assert {e.etag for e in events} == {info.etag} and info.etag.endswith("-2")
    assert {e.size for e in events} == {size}
    assert "ObjectCreated:CompleteMultipartUpload" in {e.event_name for e in events}


def test_a_failing_handler_gets_the_message_again(
    local_s3: LocalS3, storage: Storage, s3: Any, events_queue: str, user_id: str
) -> None:
    key = storage.video_key(user_id, uuid.uuid4())
    calls: list[str] = []
    done = threading.Event()

    def flaky(body: dict[str, Any]) -> None:
        for created in Storage.iter_object_created(body):
            calls.append(created.key)
            if len(calls) == 1:
                raise RuntimeError("database briefly down")
            done.set()

    pump = SqsEventPump(
        events_queue, local_s3.endpoint_url, flaky, region=local_s3.region, visibility_timeout=1
    )
    with pump:
        s3.put_object(Bucket=storage.bucket, Key=key, Body=tiny_mp4(), ContentType="video/mp4")
        assert done.wait(15)
    assert calls == [key, key]


def test_the_pump_stops_promptly(local_s3: LocalS3, events_queue: str) -> None:
    pump = SqsEventPump(events_queue, local_s3.endpoint_url, lambda body: None).start()
    thread = pump._thread
    pump.stop()
    assert thread is not None and not thread.is_alive()


# -- the parser on recorded shapes ----------------------------------------------------------

# the user and generation of the recorded events' video key
U = "0b5e7f3c-7a61-4a6e-9d55-2f0f3c1f9a10"
G = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"


def test_parser_handles_several_records_and_both_encodings() -> None:
    event = records(
        load("s3_object_created", key=f"videos%2F{U}%2F{G}.mp4", size=10, etag="abc"),  # moto
        load(  # AWS
            "s3_object_created",
            key="videos/u1/clip+one%2B.mp4",
            event_name="ObjectCreated:Copy",
            size=5,
            etag='"d"',
        ),
        load("s3_object_created", key="videos/u1/gone.mp4", event_name="ObjectRemoved:Delete"),
    )
    assert list(Storage.iter_object_created(event)) == [
        ObjectCreated(f"videos/{U}/{G}.mp4", 10, "abc", "ObjectCreated:Put"),
        ObjectCreated("videos/u1/clip one+.mp4", 5, "d", "ObjectCreated:Copy"),
    ]


def test_parser_unwraps_an_sqs_lambda_event() -> None:
    event = records(
        load("sqs_s3_object_created"),
        load("sqs_s3_object_created", body=load("s3_test_event")),
        load("sqs_s3_object_created", body="not json"),
    )
    keys = [c.key for c in Storage.iter_object_created(event)]
    assert keys == [f"videos/{U}/{G}.mp4"]


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"Records": None},
        {"Records": ["nope", 3]},
        {"Records": [{"eventName": "ObjectCreated:Put"}]},
        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {"object": {"size": 1}}}]},
        load("s3_object_created", size="many"),
        load("s3_test_event"),
    ],
)
def test_parser_skips_what_it_cannot_use(event: dict[str, Any]) -> None:
    assert list(Storage.iter_object_created(event)) == []
