"""The one way an ASGI app is served on a thread here: a port in use is an error at once, a
lifespan that fails is a start that fails, and stopping frees the port."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from izgens_local.servers import ServerThread


def _hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


APP = Starlette(routes=[Route("/", _hello)])


def test_it_serves_and_stopping_frees_the_port() -> None:
    with ServerThread(APP, name="test-hello") as server:
        assert httpx.get(server.url + "/").text == "hello"
        assert any(t.name == "test-hello" for t in threading.enumerate())
    assert not server.thread.is_alive()
    server.stop()  # a second stop does nothing
    with socket.socket() as again:
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", server.port))


def test_a_port_in_use_fails_before_any_thread_starts() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        before = threading.active_count()
        with pytest.raises(OSError, match=f"test-taken cannot listen on 127.0.0.1:{port}"):
            ServerThread(APP, port, name="test-taken")
        assert threading.active_count() == before


def test_a_failing_lifespan_fails_the_start() -> None:
    @contextlib.asynccontextmanager
    async def broken(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("no database")
        yield

    server = ServerThread(Starlette(lifespan=broken), name="test-broken", lifespan="on")
    with pytest.raises(RuntimeError, match="test-broken did not start"):
        server.start()
    assert not server.thread.is_alive()
