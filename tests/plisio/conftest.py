"""Real HTTP for the Plisio tests: the simulator under uvicorn, and a callback receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from izgens.plisio import PlisioClient
from izgens_local.plisio_sim import SimConfig, create_app
from izgens_local.servers import ServerThread
from tests.support.servers import QuietHandler, StubServer

# distinctive, so a leak is easy to find in logs and messages
SIM_SECRET = "sim-secret-9f3c1e-DO-NOT-LEAK"


def serve_sim(app: Any) -> ServerThread:
    """A simulator app on a free 127.0.0.1 port, with uvicorn's logging left as it is and
    its access log on (test_plisio_client reads it)."""
    return ServerThread(
        app,
        name="plisio-sim",
        log_config=None,
        log_level=None,
        access_log=True,
        ws="none",
        http="h11",
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    seen_status: str | None = None


@dataclass
class Receiver:
    """A plain-HTTP callback endpoint: records every POST, answers `status_code`."""

    url: str
    calls: list[Received] = field(default_factory=list)
    status_code: int = 200
    on_call: Callable[[Received], None] | None = None


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    holder: dict[str, Receiver] = {}

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            rec = Received(self.path, dict(self.headers.items()), self.read_body())
            state = holder["r"]
            if state.on_call:
                state.on_call(rec)
            state.calls.append(rec)
            body = b"ok" if state.status_code == 200 else b"nope"
            self.reply(state.status_code, body, "text/plain")

    with StubServer(Handler) as server:
        holder["r"] = Receiver(url=server.base)
        yield holder["r"]


@pytest.fixture(scope="session")
def server_thread() -> Callable[[Any], ServerThread]:
    """For tests that need a simulator of their own, configured differently."""
    return serve_sim


@pytest.fixture(scope="session")
def sim_secret() -> str:
    return SIM_SECRET


@pytest.fixture(scope="session")
def sim_url() -> Iterator[str]:
    with serve_sim(create_app(SimConfig(secret_key=SIM_SECRET))) as server:
        yield server.url


@pytest.fixture
def api_url(sim_url: str) -> str:
    return f"{sim_url}/api/v1"


@pytest.fixture
def sim(sim_url: str) -> Iterator[httpx.Client]:
    """Plain HTTP to the simulator's driver routes; state is reset for every test."""
    with httpx.Client(base_url=sim_url, timeout=10) as client:
        client.post("/sim/reset").raise_for_status()
        yield client


@pytest.fixture
def plisio(api_url: str, sim: httpx.Client) -> Iterator[PlisioClient]:
    with PlisioClient(api_url, SIM_SECRET, timeout=5, backoff=0) as client:
        yield client
