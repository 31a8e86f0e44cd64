"""The one way an ASGI app is served on a thread here: a port in use is an error at once, a
lifespan that fails is a start that fails, answers do not wait for delayed ACKs, and
stopping frees the port."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
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


def test_answers_do_not_wait_for_delayed_acks() -> None:
    """A socket made without IPPROTO_TCP gets no TCP_NODELAY from asyncio: each answer on a
    kept-alive connection then waits ~40 ms (20 requests took 0.9 s instead of 0.01 s)."""
    with ServerThread(APP, name="test-nodelay") as server, httpx.Client(base_url=server.url) as c:
        c.get("/")
        started = time.perf_counter()
        for _ in range(20):
            c.get("/")
        assert time.perf_counter() - started < 0.4
