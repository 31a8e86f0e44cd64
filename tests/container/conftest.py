"""The container app (izgens.container) served by uvicorn with its ASGI lifespan on, over
real HTTP, against this test's database; tokens are the dev server's (its JWKS stands in
for Supabase Auth's, SUPABASE_URL points at it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from izgens.db import Database
from tests.conftest import DevServer, free_port


class LifespanServer:
    """uvicorn on a background thread, lifespan on (the cleanup schedule lives there)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            access_log=False,
            lifespan="on",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="container", daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> LifespanServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the container app did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        assert not self.thread.is_alive(), "the container app did not shut down"


@pytest.fixture
def serve(
    dev_server: DevServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., LifespanServer]]:
    """Start `izgens.container.app` (or another app) with the given settings; stopped at the
    end of the test if the test did not stop it."""
    started: list[LifespanServer] = []

    def start(app: Any = None, **env: str) -> LifespanServer:
        if app is None:
            from izgens.container import app
        for key, value in {"CLEANUP_INTERVAL_SECONDS": "0", **env}.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        server = LifespanServer(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        if server.thread.is_alive():
            server.stop()


@pytest.fixture
def container(serve: Callable[..., LifespanServer]) -> Iterator[httpx.Client]:
    """A client of the container app, cleanup schedule off."""
    server = serve()
    with httpx.Client(base_url=server.base, timeout=30) as client:
        yield client
