"""A fault-injecting HTTP proxy for one upstream (the Seedance simulator).

Each connection carries one request; the first matching rule decides what happens to it:

    pass         forwarded, the answer relayed
    drop         the connection is closed before anything is forwarded (no task is created)
    drop-after   forwarded (the provider acts on it), then closed without an answer
    truncate     forwarded; the answer's head and half its body are relayed, then closed
    hang         nothing is forwarded and nothing answered (the client times out)
    500, 429, …  answered with that status and the provider's error envelope, not forwarded

The simulator builds video URLs from the Host of the create request, so videos of tasks
created through the proxy are downloaded through it too.
"""

from __future__ import annotations

import json
import re
import socket
import threading
from dataclasses import dataclass, field

__all__ = ["FaultProxy", "Rule"]

_CODES = {429: "ServerOverloaded", 500: "InternalServiceError", 503: "ServiceUnavailable"}


@dataclass
class Rule:
    method: str
    path: re.Pattern[str]
    action: str
    times: int | None = None  # None: every matching request
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        live = self.times is None or self.hits < self.times
        return live and method == self.method and bool(self.path.search(path))


@dataclass
class Seen:
    method: str
    path: str
    action: str


@dataclass
class FaultProxy:
    upstream: tuple[str, int]
    rules: list[Rule] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)

    @classmethod
    def to(cls, base_url: str) -> FaultProxy:
        host, _, port = base_url.removeprefix("http://").partition(":")
        return cls((host, int(port)))

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(5)
        self._server.close()

    # rules

    def fail(self, method: str, path: str, action: str, times: int | None = None) -> Rule:
        rule = Rule(method, re.compile(path), action, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def count(self, method: str, path: str, action: str | None = None) -> int:
        pattern = re.compile(path)
        with self._lock:
            return sum(
                1
                for s in self.seen
                if s.method == method
                and pattern.search(s.path)
                and (action is None or s.action == action)
            )

    def _decide(self, method: str, path: str) -> str:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    rule.hits += 1
                    action = rule.action
                    break
            else:
                action = "pass"
            self.seen.append(Seen(method, path, action))
            return action

    # serving

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            request = _read_request(client)
            if request is None:
                return
            head, body = request
            method, path = head.split(b" ", 2)[:2]
            action = self._decide(method.decode(), path.decode())
            if action == "drop":
                return
            if action == "hang":
                self._stopping.wait(30)
                return
            if action.isdigit():
                client.sendall(_error_answer(int(action)))
                return
            answer = self._forward(head, body)
            if action == "drop-after":
                return
            if action == "truncate":
                split = answer.find(b"\r\n\r\n") + 4
                client.sendall(answer[: split + (len(answer) - split) // 2])
                return
            client.sendall(answer)

    def _forward(self, head: bytes, body: bytes) -> bytes:
        lines = [
            line
            for line in head.split(b"\r\n")
            if line and not line.lower().startswith(b"connection:")
        ]
        request = b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + body
        with socket.create_connection(self.upstream, timeout=30) as upstream:
            upstream.sendall(request)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _read_request(sock: socket.socket) -> tuple[bytes, bytes] | None:
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        try:
            chunk = sock.recv(65536)
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head, body


def _error_answer(status: int) -> bytes:
    code = _CODES.get(status, "InternalServiceError")
    body = json.dumps(
        {"error": {"code": code, "message": f"injected {status}", "param": "", "type": code}}
    ).encode()
    head = (
        f"HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body
