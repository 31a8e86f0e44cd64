"""Fixtures for the storage tests: moto in server mode on a free port, a Storage on it, and a
little loopback HTTP server standing in for the provider's video host."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from izgens.storage import MIN_PART_SIZE, Storage
from izgens_local.s3 import LocalS3, start_local_s3
from tests.support.mp4 import tiny_mp4
from tests.support.servers import QuietHandler, StubServer

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(200)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
WEBP = b"RIFF\x00\x01\x00\x00WEBPVP8 " + bytes(200)


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    handle = start_local_s3(0, bucket="izgens-test", queue_name="izgens-test-events")
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture(scope="session")
def storage(local_s3: LocalS3) -> Storage:
    """Smallest legal parts, so multipart paths run with modest bodies."""
    return local_s3.storage(part_size=MIN_PART_SIZE)


@pytest.fixture
def user_id() -> str:
    return str(uuid.uuid4())


@pytest.fixture(scope="session")
def s3(storage: Storage) -> Any:
    """The raw boto3 client, to put objects behind Storage's back."""
    return storage.client


@dataclass
class VideoHost:
    """Routes: /tiny.mp4, /blob?size=N[&type=][&length=0][&magic=0], /redirect?to=URL,
    /loop, /missing. Every request path is recorded in `hits`."""

    port: int
    hits: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def allowed(self) -> list[str]:
        return [f"127.0.0.1:{self.port}"]


def _make_handler(hits: list[str], tiny: bytes) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            hits.append(self.path)
            parts = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            if parts.path == "/tiny.mp4":
                self.reply(200, tiny, "video/mp4")
            elif parts.path == "/blob":
                size = int(query["size"])
                head = tiny[:32] if query.get("magic", "1") == "1" else b"<html>not a video</html>"
                length = size if query.get("length", "1") == "1" else None
                self._stream(query.get("type", "video/mp4"), _blob(head, size), length)
            elif parts.path == "/redirect":
                self.reply(302, headers={"Location": query["to"]})
            elif parts.path == "/loop":
                self.reply(302, headers={"Location": "/loop"})
            else:
                self.reply(404, b"no such video", "text/plain")

        def _stream(self, ctype: str, body: Iterator[bytes], length: int | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            if length is not None:
                self.send_header("Content-Length", str(length))
            self.end_headers()
            try:
                for chunk in body:
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (e.g. over max_bytes): expected

    return Handler


def _blob(head: bytes, size: int) -> Iterator[bytes]:
    """`size` bytes starting with `head`, generated (the server never holds the body)."""
    block = bytes(range(256)) * 256  # 64 KiB
    yield head[:size]
    left = size - min(len(head), size)
    while left > 0:
        piece = block[: min(left, len(block))]
        left -= len(piece)
        yield piece


@pytest.fixture(scope="module")
def video_host() -> Iterator[VideoHost]:
    hits: list[str] = []
    with StubServer(_make_handler(hits, tiny_mp4())) as server:
        yield VideoHost(port=server.port, hits=hits)
