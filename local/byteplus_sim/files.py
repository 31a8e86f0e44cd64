"""The files a succeeded task links to (the video, its last frame), behind signed,
expiring URLs that are refused the way object storage refuses them."""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from importlib import resources

from starlette.responses import Response


def sign(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def tiny_png() -> bytes:
    """A valid 1×1 PNG for `last_frame_url`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def load_video() -> bytes:
    return resources.files("izgens_local").joinpath("fixtures/tiny10.mp4").read_bytes()


def denied(code: str, message: str) -> Response:
    """Object storage's refusal, as TOS/S3 answer an expired or forged presigned URL."""
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
    body += f"<Message>{message}</Message></Error>"
    return Response(body, 403, media_type="application/xml")
