"""Stand-ins for other people's HTTP servers (video hosts, callback receivers, AWS
endpoints): a stdlib handler class served on a free loopback port from a daemon thread.
The uvicorn-served apps (dev server, simulators) have their own runner in izgens_local."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["QuietHandler", "StubServer", "dead_url", "free_port"]


class QuietHandler(BaseHTTPRequestHandler):
    """A handler that keeps the test output clean and answers in one call."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        return

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length", "0")))


class StubServer:
    """`handler` on 127.0.0.1:<free port>, one thread per request, until `stop()` (or the
    end of the `with` block): shut down, socket closed, serving thread joined."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self.host = f"127.0.0.1:{self.port}"
        self.base = f"http://{self.host}"
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a loop that never started
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dead_url() -> str:
    """An http URL on a port nothing listens on (bound, then released)."""
    return f"http://127.0.0.1:{free_port()}"
