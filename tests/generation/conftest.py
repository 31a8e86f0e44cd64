"""The generation lifecycle over real HTTP: the dev server's functions talk to a moto S3 server
(whose `videos/` events reach `video_stored` through SQS and a pump), the Seedance simulator
(which calls back into the dev server), and this test's own Postgres database.

The servers live for the package; each test gets a fresh database (`db`), an emptied
simulator with the default account limits, and the helpers on `GenEnv`. Time is moved by
shifting a generation's timestamps in the database, never by sleeping.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from izgens import generations
from izgens.config import reset_settings
from izgens.db import Database, get_database
from izgens.logs import request_id_var
from izgens.storage import Storage, reset_storage
from izgens_local.byteplus_sim import SimConfig, SimServer
from izgens_local.s3 import LocalS3, SqsEventPump, start_local_s3
from tests.conftest import DevServer
from tests.support.rows import row_counts
from tests.support.users import balance, make_user
from tests.support.waiting import wait_for

API_KEY = "gen-test-byteplus-key-7f3a"
SIGNING_KEY = "gen-test-callback-signing-key-0123456789"
SIM_DEFAULTS = {"rpm": 600, "max_queued": 120, "max_running": 10, "delay": 0.3}


def png(width: int = 320, height: int = 320) -> bytes:
    """A real PNG (8-bit grey gradient), big enough for the provider's 300 px minimum."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\x00" + bytes((x + y) % 256 for x in range(width)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def is_mp4(data: bytes) -> bool:
    return len(data) > 12 and data[4:8] == b"ftyp"


@dataclass
class EventLog:
    """What the S3 → SQS → video_stored pump delivered: (keys, counts) per event."""

    handled: list[tuple[list[str], dict[str, int]]] = field(default_factory=list)
    busy: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def keys(self) -> list[str]:
        with self.lock:
            return [k for keys, _ in self.handled for k in keys]

    def clear(self) -> None:
        with self.lock:
            self.handled.clear()


@dataclass
class Stack:
    dev: DevServer
    s3: LocalS3
    sim: SimServer
    storage: Storage
    events: EventLog


class SqlCounter:
    """SQL round trips on the process-wide database, attributed to the request id that ran
    them (the dev server also serves callbacks and S3 events while a test runs)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self.by_request: dict[str | None, int] = {}
        self._run = database._run
        self._lock = threading.Lock()

    def __enter__(self) -> SqlCounter:
        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                rid = request_id_var.get()
                self.by_request[rid] = self.by_request.get(rid, 0) + 1
            return self._run(*args, **kwargs)

        self.database._run = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        del self.database._run

    def of(self, request_id: str) -> int:
        with self._lock:
            return self.by_request.get(request_id, 0)


@pytest.fixture(scope="package")
def gen_s3() -> Iterator[LocalS3]:
    handle = start_local_s3(0, bucket="izgens-gen-test", queue_name="izgens-gen-test-events")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="package")
def gen_sim() -> Iterator[SimServer]:
    config = SimConfig(
        api_key=API_KEY,
        callback_retry_delay=0.1,
        callback_timeout=5.0,
        timeout_sleep=2.0,
        **SIM_DEFAULTS,  # type: ignore[arg-type]
    )
    with SimServer(config) as server:
        yield server


@pytest.fixture(scope="package")
def stack(dev_server: DevServer, gen_s3: LocalS3, gen_sim: SimServer) -> Iterator[Stack]:
    """Point the process (and so the dev server's functions) at moto and the simulator."""
    from izgens_functions.video_stored.handler import handle_event

    env = {
        **gen_s3.env(),
        "BYTEPLUS_BASE_URL": gen_sim.api_url,
        "BYTEPLUS_API_KEY": API_KEY,
        "BYTEPLUS_VIDEO_HOSTS": gen_sim.url.removeprefix("http://"),
        "BYTEPLUS_TIMEOUT_SECONDS": "1.0",
        "CALLBACK_SIGNING_KEY": SIGNING_KEY,
        "PUBLIC_BASE_URLS": f"status={dev_server.base}/status",
    }
    events = EventLog()

    def deliver(event: dict[str, Any]) -> None:
        keys = [record.key for record in Storage.iter_object_created(event)]
        with events.lock:
            events.busy += 1
        try:
            counts = handle_event(event)
        finally:
            with events.lock:
                events.busy -= 1
        with events.lock:
            events.handled.append((keys, counts))

    def refresh() -> None:
        reset_settings()
        reset_storage()
        generations.reset_provider()

    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        refresh()
        pump = SqsEventPump(
            gen_s3.queue_url,
            gen_s3.endpoint_url,
            deliver,
            region=gen_s3.region,
            wait_seconds=1,
            visibility_timeout=2,
        ).start()
        try:
            yield Stack(dev_server, gen_s3, gen_sim, gen_s3.storage(), events)
        finally:
            pump.stop()
    refresh()


@dataclass
class User:
    id: uuid.UUID
    headers: dict[str, str]


class GenEnv:
    """One test's view: its database, an HTTP client on the dev server, and helpers."""

    def __init__(self, stack: Stack, db: Database, api: httpx.Client) -> None:
        self.stack = stack
        self.db = db
        self.api = api
        self.sim = stack.sim
        self.storage = stack.storage

    # users and money

    def user(self, credits: int = 10_000, *, adult: bool = True) -> User:
        user_id = make_user(self.db, credits=credits, adult=adult)
        token = self.stack.dev.token(user_id)
        return User(user_id, {"Authorization": f"Bearer {token}"})

    def balance(self, user: User) -> int:
        return balance(self.db, user.id)

    def ledger(self, generation_id: str | uuid.UUID) -> list[tuple[str, int]]:
        rows = self.db.all(
            "select reason, delta from public.credit_ledger where ref = %s order by id",
            (str(generation_id),),
        )
        return [(r["reason"], int(r["delta"])) for r in rows]

    def row(self, generation_id: str | uuid.UUID) -> dict[str, Any]:
        row = self.db.one("select * from public.generations where id = %s", (generation_id,))
        assert row is not None, f"no generation {generation_id}"
        return row

    def counts(self) -> dict[str, int]:
        """Rows a refused request must not have written."""
        return row_counts(
            self.db,
            generations="public.generations",
            ledger="public.credit_ledger",
            rate_limits="public.rate_limits",
        )

    # requests

    def generate(
        self,
        user: User,
        prompt: str = "a paper boat on a river",
        *,
        key: str | None = None,
        **fields: Any,
    ) -> httpx.Response:
        body = {"prompt": prompt, **fields}
        headers = {**user.headers, "Idempotency-Key": key or uuid.uuid4().hex}
        return self.api.post("/generate/generations", json=body, headers=headers)

    def accepted(self, user: User, prompt: str = "a paper boat on a river", **fields: Any) -> dict:
        response = self.generate(user, prompt, **fields)
        assert response.status_code == 202, response.text
        return response.json()

    def status(self, user: User, generation_id: str) -> httpx.Response:
        return self.api.get(f"/status/generations/{generation_id}", headers=user.headers)

    def wait_status(self, generation_id: str, *states: str, timeout: float = 10.0) -> dict:
        """The row once its status is one of `states` (moved by callbacks and S3 events)."""
        return wait_for(
            lambda: (r := self.row(generation_id))["status"] in states and r,
            timeout,
            f"generation {generation_id} reaching {states}",
        )

    # time and jobs

    def age(self, generation_id: str | uuid.UUID, seconds: float) -> None:
        """Move a generation `seconds` into the past: every timestamp it carries."""
        shifted = (
            "created_at",
            "updated_at",
            "checked_at",
            "submitted_at",
            "submit_lease_until",
            "submit_attempted_at",
            "storing_lease_until",
        )
        assignments = ", ".join(f"{c} = {c} - make_interval(secs => %(s)s)" for c in shifted)
        self.db.execute(
            f"update public.generations set {assignments} where id = %(id)s",
            {"s": seconds, "id": generation_id},
        )

    def reconcile(self) -> dict[str, int]:
        """The cleanup job, as the schedule runs it."""
        from izgens.cleanup import run_jobs

        result = run_jobs(["generations"])["generations"]
        assert "error" not in result, result
        return result

    # the simulator

    def sim_tasks(self, generation_id: str | uuid.UUID | None = None) -> list[dict[str, Any]]:
        """Tasks the simulator holds (oldest first), those of one generation if given."""
        tasks = sorted(self.sim.iter_tasks(), key=lambda t: t["created_at"])
        if generation_id is None:
            return tasks
        suffix = uuid.UUID(str(generation_id)).hex
        return [t for t in tasks if (t.get("safety_identifier") or "").endswith(suffix)]

    def sim_task(self, generation_id: str | uuid.UUID) -> dict[str, Any]:
        tasks = self.sim_tasks(generation_id)
        assert len(tasks) == 1, f"expected one provider task, found {len(tasks)}"
        return tasks[0]

    def create_requests(self) -> int:
        return int(self.sim.engine.inspect()["total_create_requests"])

    def lose_callbacks(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """From now on tasks are created without a callback URL (every callback is lost)."""
        monkeypatch.delenv("PUBLIC_BASE_URLS")
        reset_settings()

    def drop_callback(self, task_id: str) -> None:
        """The provider's callbacks for this task never arrive."""
        with self.sim.engine._lock:
            self.sim.engine.tasks[task_id].callback_url = None

    def object_exists(self, key: str) -> bool:
        return self.storage.head(key) is not None

    def settle(self) -> None:
        """Wait until the simulator's callbacks and the bucket's events are all handled."""
        _quiesce(self.stack, reset=False)


@pytest.fixture
def env(stack: Stack, db: Database, api: httpx.Client) -> Iterator[GenEnv]:
    stack.sim.engine.reset()
    for name, value in SIM_DEFAULTS.items():
        setattr(stack.sim.config, name, value)
    stack.events.clear()
    assert get_database().url == os.environ["DATABASE_URL"]
    yield GenEnv(stack, db, api)
    _quiesce(stack)


def _quiesce(stack: Stack, *, reset: bool = True) -> None:
    """Let the provider's callbacks and the bucket's events of this test finish before its
    database goes: nothing of one test may run against the next one's."""
    engine = stack.sim.engine
    if reset:
        engine.reset()

    def callbacks_done() -> bool:
        with engine._lock:
            return not engine._draining

    wait_for(callbacks_done, 15, "the simulator's callbacks finishing")
    queue = _sqs(stack.s3)

    def events_done() -> bool:
        attributes = queue.get_queue_attributes(
            QueueUrl=stack.s3.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        with stack.events.lock:
            busy = stack.events.busy
        return busy == 0 and all(int(v) == 0 for v in attributes.values())

    wait_for(events_done, 15, "the bucket's events being handled")


@functools.lru_cache(maxsize=2)
def _sqs_client(endpoint_url: str, region: str, key_id: str, secret: str) -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region
    ).client("sqs", endpoint_url=endpoint_url)


def _sqs(s3: LocalS3) -> Any:
    return _sqs_client(s3.endpoint_url, s3.region, s3.access_key_id, s3.secret_access_key)
