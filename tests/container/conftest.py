"""The container app (izgens.container) served by uvicorn with its ASGI lifespan on, over
real HTTP, against this test's database; tokens are the dev server's (its JWKS stands in
for Supabase Auth's, SUPABASE_URL points at it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from izgens.db import Database
from izgens_local.servers import ServerThread
from tests.conftest import DevServer


@pytest.fixture
def serve(
    dev_server: DevServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ServerThread]]:
    """Start `izgens.container.app` (or another app) with the given settings; stopped at the
    end of the test if the test did not stop it."""
    started: list[ServerThread] = []

    def start(app: Any = None, **env: str) -> ServerThread:
        if app is None:
            from izgens.container import app
        for key, value in {"CLEANUP_INTERVAL_SECONDS": "0", **env}.items():
            monkeypatch.setenv(key, value)
        reset_settings()
        # lifespan on: the cleanup schedule lives there
        server = ServerThread(app, name="container", lifespan="on", stop_timeout=30).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()  # once more for a test that stopped it: does nothing


@pytest.fixture
def container(serve: Callable[..., ServerThread]) -> Iterator[httpx.Client]:
    """A client of the container app, cleanup schedule off."""
    server = serve()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
