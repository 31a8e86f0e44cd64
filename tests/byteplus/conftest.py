"""Real HTTP for the BytePlus tests: the Seedance simulator under uvicorn, a callback receiver,
and our own client pointed at the simulator."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from izgens.byteplus import BytePlusClient
from izgens_local.byteplus_sim import SimConfig, SimServer
from tests.support.mp4 import make_mp4
from tests.support.servers import QuietHandler, StubServer

# distinctive, so a leak is easy to find in messages and logs
API_KEY = "sim-byteplus-key-5e1d0a-DO-NOT-LEAK"


def sim_config(**overrides: Any) -> SimConfig:
    """Short delays so the whole folder runs in seconds."""
    values: dict[str, Any] = {
        "api_key": API_KEY,
        "delay": 0.2,
        "callback_retry_delay": 0.05,
        "callback_timeout": 2.0,
        "timeout_sleep": 1.5,
    }
    values.update(overrides)
    return SimConfig(**values)


@pytest.fixture(scope="module")
def _shared_sim() -> Iterator[SimServer]:
    with SimServer(sim_config()) as server:
        yield server


@pytest.fixture
def sim(_shared_sim: SimServer) -> SimServer:
    """The shared simulator (default limits), emptied for each test."""
    _shared_sim.engine.reset()
    return _shared_sim


@pytest.fixture
def start_sim() -> Iterator[Callable[..., SimServer]]:
    """Start a simulator with its own config (limits, TTLs); stopped after the test."""
    servers: list[SimServer] = []

    def start(**overrides: Any) -> SimServer:
        server = SimServer(sim_config(**overrides)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def client(sim: SimServer) -> Iterator[BytePlusClient]:
    with BytePlusClient(sim.api_url, API_KEY, timeout=5.0, backoff=0.01) as c:
        yield c


@pytest.fixture
def raw(sim: SimServer) -> Iterator[httpx.Client]:
    """Plain HTTP to the simulator, for what our client never sends (nulls, bad bodies)."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sim.api_url, headers=headers, timeout=5.0) as c:
        yield c


@dataclass
class Receiver:
    """A callback endpoint: records every POST and answers from `script`, then 200."""

    url: str = ""
    received: list[dict[str, Any]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def bodies(self, status: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.received if status is None or b.get("status") == status]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = json.loads(self.read_body() or b"null")
            with state.lock:
                state.received.append(body)
                code = state.script.pop(0) if state.script else 200
            self.reply(code)

    with StubServer(Handler) as server:
        state.url = f"{server.base}/hook"
        yield state


@pytest.fixture(scope="module")
def video_host() -> Iterator[str]:
    """Reference videos on loopback, as the provider downloads them: `/<seconds>.mp4` is an
    MP4 of that length (`?declared=N` makes its headers claim N seconds), `/junk.mp4` is not
    an MP4, anything else is 404. Answers the base URL."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            path, _, query = self.path.partition("?")
            name = path.rsplit("/", 1)[-1]
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            body: bytes | None = None
            if name == "junk.mp4":
                body = b"<html>not a video</html>"
            elif name.endswith(".mp4"):
                try:
                    seconds = float(name[:-4])
                except ValueError:
                    seconds = -1
                if seconds > 0:
                    declared = float(params["declared"]) if "declared" in params else None
                    body = make_mp4(seconds, declared_seconds=declared)
            self.reply(200 if body is not None else 404, body or b"", "video/mp4")

    with StubServer(Handler) as server:
        yield server.base
