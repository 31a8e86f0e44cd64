"""An ASGI app served by uvicorn on a background thread: the dev stack, the simulators, the
benchmarks and the tests all need one on a real socket, started and stopped the same way."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, Self

__all__ = ["MAX_REQUEST_HEAD", "ServerThread"]

# h11 refuses a request line and headers longer than its buffer (16 KiB by default) with
# a bare 400 of its own, but only when they arrive in more than one read, so a long query
# string was at random a problem+json from the app or uvicorn's plain text. A buffer past
# anything the app accepts lets the app answer every such request (Dockerfile: the same).
MAX_REQUEST_HEAD = 256 * 1024


class ServerThread:
    """uvicorn on a thread of its own (signal handling stays with the main thread).

    The socket is bound here, before the thread exists, so a port in use is an OSError at
    once rather than a server thread that quietly exits, and port 0 is known (`port`, `url`)
    before the server starts. `options` go to `uvicorn.Config` (by default: quiet, no
    lifespan). `stop` raises if the server is still running after `stop_timeout`: a server
    left behind holds its port.

        with ServerThread(app, name="plisio-sim") as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self,
        app: Any,
        port: int = 0,
        *,
        host: str = "127.0.0.1",
        name: str = "asgi-server",
        stop_timeout: float = 10.0,
        **options: Any,
    ) -> None:
        import uvicorn  # a dev-only dependency

        self.name = name
        self.stop_timeout = stop_timeout
        # IPPROTO_TCP, as asyncio's own sockets: only then does it set TCP_NODELAY on the
        # connections (without, small answers wait ~40 ms for delayed ACKs)
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self._socket.bind((host, port))
        except OSError as exc:
            self._socket.close()
            raise OSError(
                exc.errno, f"{name} cannot listen on {host}:{port}: {exc.strerror}"
            ) from exc
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        settings: dict[str, Any] = {
            "log_level": "warning",
            "access_log": False,
            "lifespan": "off",
            # requests still in flight (a simulated 30 s timeout) are cut short, so that
            # stop() returns within stop_timeout
            "timeout_graceful_shutdown": 5,
            "h11_max_incomplete_event_size": MAX_REQUEST_HEAD,
            **options,
        }
        self.server = uvicorn.Server(uvicorn.Config(app, **settings))
        self._exit: str | None = None
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self._socket])
        except SystemExit as exc:  # uvicorn's way to give up, e.g. when the lifespan fails
            self._exit = f"uvicorn exited with {exc.code}"

    def start(self, timeout: float = 15.0) -> Self:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            ended = not self.thread.is_alive()
            if ended or time.monotonic() > deadline:
                why = self._exit or ("it ended" if ended else f"not within {timeout:g} s")
                self.server.should_exit = True
                self.thread.join(self.stop_timeout)
                self._socket.close()
                raise RuntimeError(f"{self.name} did not start on {self.url}: {why}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving; a second call, or one on a server never started, does nothing more."""
        self.server.should_exit = True
        if self.thread.ident is not None:
            self.thread.join(self.stop_timeout)
        self._socket.close()
        if self.thread.is_alive():
            raise RuntimeError(f"{self.name} did not stop within {self.stop_timeout:g} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
