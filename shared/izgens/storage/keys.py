"""Every key layout of the bucket, the upload types, and what a key may be (nothing we did not build)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypedDict

from izgens.media import VideoInfo

__all__ = [
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "ObjectCreated",
    "ObjectInfo",
    "PresignedUpload",
    "ReferenceInfo",
    "UPLOAD_EXPIRY_SECONDS",
    "UPLOAD_TYPES",
    "UploadMethod",
    "UploadType",
]

MiB = 1024 * 1024

MIN_PART_SIZE = 5 * MiB  # S3's minimum for every multipart part but the last

DEFAULT_PART_SIZE = 8 * MiB

UPLOAD_EXPIRY_SECONDS = 15 * 60

SNIFF_BYTES = 64

Kind = Literal["image", "video"]


@dataclass(frozen=True, slots=True)
class UploadType:
    ext: str
    kind: Kind
    max_bytes: int


# The provider's input limits (byteplus-seedance.md §2.3): images < 30 MB, videos ≤ 200 MB.
UPLOAD_TYPES: Mapping[str, UploadType] = {
    "image/jpeg": UploadType("jpg", "image", 30_000_000),
    "image/png": UploadType("png", "image", 30_000_000),
    "image/webp": UploadType("webp", "image", 30_000_000),
    "video/mp4": UploadType("mp4", "video", 200_000_000),
    "video/quicktime": UploadType("mov", "video", 200_000_000),
}

_TYPE_BY_EXT = {t.ext: ct for ct, t in UPLOAD_TYPES.items()}

_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"

_EXTS = "|".join(sorted(_TYPE_BY_EXT))

# fullmatch + re.ASCII + lowercase-only classes: no `..`, no extra segments, no lookalikes.
_REFERENCE_KEY = re.compile(rf"references/({_UUID})/([0-9a-f]{{32}})\.({_EXTS})", re.ASCII)

_VIDEO_KEY = re.compile(rf"videos/({_UUID})/({_UUID})\.mp4", re.ASCII)

_INPUT_KEY = re.compile(rf"inputs/({_UUID})/({_UUID})/([0-9]{{1,2}})\.({_EXTS})", re.ASCII)

_UUID_RE = re.compile(_UUID, re.ASCII)

_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]{0,251}[a-z0-9])?|[0-9a-f:.]{2,45}", re.ASCII)

_SAFE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-/]{0,1000}", re.ASCII)

# ISO BMFF brands of still images (HEIF/AVIF): `ftyp` at offset 4 but not a video.
_IMAGE_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"mif1", b"avif", b"avis"})


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    size: int
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class ReferenceInfo:
    kind: Kind
    content_type: str
    bytes: int
    video: VideoInfo | None = None  # read from the file's index, for videos only
    etag: str = ""


@dataclass(frozen=True, slots=True)
class ObjectCreated:
    key: str
    size: int
    etag: str
    event_name: str


class PresignedUpload(TypedDict):
    """How the browser sends the file: `POST` a form of `fields` plus the file to `url`
    (AWS S3), or `PUT` the bare file to `url` with exactly `headers` (Supabase Storage)."""

    key: str
    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: datetime


UploadMethod = Literal["post", "put"]


def _canonical_uuid(value: str | uuid.UUID, what: str) -> str:
    """Our keys always hold the lowercase 8-4-4-4-12 form, so one id has exactly one key."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str) and _UUID_RE.fullmatch(value.lower()):
        return value.lower()
    raise ValueError(f"{what} is not a UUID")


def _sniff(content_type: str, head: bytes) -> bool:
    """Whether the first bytes look like `content_type` (the browser-declared type is a claim)."""
    if content_type == "image/jpeg":
        return head[:3] == b"\xff\xd8\xff"
    if content_type == "image/png":
        return head[:8] == b"\x89PNG\r\n\x1a\n"
    if content_type == "image/webp":
        return head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    if content_type in ("video/mp4", "video/quicktime"):
        return _looks_like_mp4(head)
    return False


def _looks_like_mp4(head: bytes) -> bool:
    return len(head) >= 12 and head[4:8] == b"ftyp" and head[8:12] not in _IMAGE_BRANDS


def _clean_etag(etag: str | None) -> str:
    return (etag or "").strip('"')
