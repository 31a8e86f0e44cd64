"""The bucket: every key layout, presigned URL, upload check, copy and event parse we do on it.

One S3 bucket (AWS S3, Supabase Storage's S3 endpoint, or moto in the dev stack) holds

    references/{user}/{uuid4 hex}.{ext}   user uploads, via a presigned POST
    inputs/{user}/{generation}/{n}.{ext}   a generation's own copy of its n-th reference:
                                           what is priced and what the provider fetches
    videos/{user}/{generation}.mp4         copied from the provider's expiring URL
    exports/{user}/{export}.json           privacy exports, streamed

boto3 and httpx are imported on first use only: cold start is part of the product. Callers
never see botocore or httpx exceptions; they get the `izgens.errors` tree:

    InvalidRequest
    ├── UnsafeURL            copy_from_url refused the URL before (or instead of) fetching it
    └── UnexpectedContent    the fetched body is not what it claims to be (type, magic bytes)
    NotFound                 missing object, or a key that is not the caller's own
    PayloadTooLarge          over the limit for that type, or over max_bytes while streaming
    ProviderUnavailable      S3 or the video host failed in a way worth retrying later
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal, TypedDict
from urllib.parse import quote, unquote_plus, urljoin, urlsplit

from izgens.errors import (
    InvalidRequest,
    IzgensError,
    NotFound,
    PayloadTooLarge,
    ProviderUnavailable,
)
from izgens.media import HEAD_BYTES, UnreadableMedia, VideoInfo, locate_moov, parse_moov

if TYPE_CHECKING:
    from izgens.config import Settings

__all__ = [
    "DEFAULT_PART_SIZE",
    "MIN_PART_SIZE",
    "UPLOAD_EXPIRY_SECONDS",
    "UPLOAD_TYPES",
    "LinkSigner",
    "ObjectCreated",
    "ObjectInfo",
    "PresignedUpload",
    "ReferenceInfo",
    "Storage",
    "UnexpectedContent",
    "UnsafeURL",
    "UploadType",
    "ContainerCredentials",
    "UploadMethod",
    "container_credentials_uri",
    "get_storage",
    "presign_get_url",
    "presign_put_url",
    "reset_credentials",
]

log = logging.getLogger(__name__)

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every multipart part but the last
DEFAULT_PART_SIZE = 8 * MiB
UPLOAD_EXPIRY_SECONDS = 15 * 60
SNIFF_BYTES = 64
MAX_REDIRECTS = 3
VIDEO_NOTIFICATION_ID = "izgens-videos"

Kind = Literal["image", "video"]


# Both keep InvalidRequest's `code`: the HTTP contract's codes stay as they are.
class UnsafeURL(InvalidRequest):
    title = "The URL is not allowed"


class UnexpectedContent(InvalidRequest):
    title = "The content is not of the expected type"


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
_COPY_CONTENT_TYPES = frozenset({"video/mp4", "application/octet-stream"})


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
    raise InvalidRequest(f"{what} is not a UUID")


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


def presign_get_url(
    *,
    endpoint: str,
    bucket: str,
    key: str,
    region: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    seconds: int,
    disposition: str | None,
    now: datetime,
) -> str:
    """An S3 SigV4 query-string presigned GET (path style), exactly as botocore signs it.

    botocore spends ~0.3 ms per URL in endpoint resolution and event hooks; an export with
    100k videos signs 100k links, so the few lines of the published algorithm are done
    here (a test compares the output with botocore's, signature included).
    """
    extra = {"response-content-disposition": disposition} if disposition is not None else {}
    return _presign(
        "GET",
        endpoint=endpoint,
        bucket=bucket,
        key=key,
        region=region,
        credentials=(access_key, secret_key, token),
        seconds=seconds,
        query_extra=extra,
        headers={},
        now=now,
    )


def presign_put_url(
    *,
    endpoint: str,
    bucket: str,
    key: str,
    region: str,
    access_key: str,
    secret_key: str,
    token: str | None,
    seconds: int,
    content_type: str,
    content_length: int,
    now: datetime,
) -> str:
    """A presigned PUT whose signature covers the exact Content-Type and Content-Length:
    S3 (and Supabase Storage's S3 endpoint) refuse the upload if either differs. Same
    output as botocore's `generate_presigned_url("put_object", ContentType=,
    ContentLength=)` (tested)."""
    return _presign(
        "PUT",
        endpoint=endpoint,
        bucket=bucket,
        key=key,
        region=region,
        credentials=(access_key, secret_key, token),
        seconds=seconds,
        query_extra={},
        headers={"content-length": str(content_length), "content-type": content_type},
        now=now,
    )


def _presign(
    method: str,
    *,
    endpoint: str,
    bucket: str,
    key: str,
    region: str,
    credentials: tuple[str, str, str | None],
    seconds: int,
    query_extra: dict[str, str],
    headers: dict[str, str],
    now: datetime,
) -> str:
    """SigV4 query-string signing (path style, UNSIGNED-PAYLOAD); `headers` (lowercase
    names) are signed besides `host`, so the request must carry exactly those values."""
    import hashlib
    import hmac

    access_key, secret_key, token = credentials
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    scope = f"{day}/{region}/s3/aws4_request"
    split = urlsplit(endpoint)
    path = f"{split.path.rstrip('/')}/{bucket}/{key}"
    canonical_path = quote(path, safe="/~")
    signed = {**headers, "host": split.netloc}
    names = sorted(signed)
    query = {
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(seconds),
        "X-Amz-SignedHeaders": ";".join(names),
        **query_extra,
    }
    if token:
        query["X-Amz-Security-Token"] = token
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(query.items())
    )
    canonical = "\n".join(
        [
            method,
            canonical_path,
            canonical_query,
            *(f"{name}:{signed[name]}" for name in names),
            "",
            ";".join(names),
            "UNSIGNED-PAYLOAD",
        ]
    )
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    signing_key = _signing_key(secret_key, day, region)
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return f"{split.scheme}://{split.netloc}{canonical_path}?{canonical_query}&X-Amz-Signature={signature}"


class LinkSigner:
    """Presigned GETs for many keys signed at one instant (a privacy export's links): the
    same URLs as `presign_get_url` (tested), with everything but the key's path computed
    once, so a link costs a hash and an HMAC. Keys and URLs are bytes, as they stream."""

    _SAFE = re.compile(rb"[A-Za-z0-9._\-/]+")

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        region: str,
        access_key: str,
        secret_key: str,
        token: str | None,
        seconds: int,
        now: datetime,
    ) -> None:
        marker = "k"  # a one-character key, replaced by each real one
        url = presign_get_url(
            endpoint=endpoint,
            bucket=bucket,
            key=marker,
            region=region,
            access_key=access_key,
            secret_key=secret_key,
            token=token,
            seconds=seconds,
            disposition=None,
            now=now,
        )
        split = urlsplit(url)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        scope = f"{amz_date[:8]}/{region}/s3/aws4_request"
        query = split.query.rsplit("&X-Amz-Signature=", 1)[0]
        self._base = split.path[: -len(marker)].encode()
        self._tail = f"\n{query}\nhost:{split.netloc}\n\nhost\nUNSIGNED-PAYLOAD".encode()
        self._to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n".encode()
        self._origin = f"{split.scheme}://{split.netloc}".encode()
        self._query = f"?{query}&X-Amz-Signature=".encode()
        self._key = _signing_key(secret_key, amz_date[:8], region)

    def __call__(self, key: bytes) -> bytes:
        import hashlib
        import hmac

        if not self._SAFE.fullmatch(key):
            key = quote(key, safe="/~").encode()
        path = self._base + key
        digest = hashlib.sha256(b"GET\n" + path + self._tail).hexdigest().encode()
        signature = hmac.digest(self._key, self._to_sign + digest, "sha256").hex().encode()
        return self._origin + path + self._query + signature


def _aws_endpoint(region: str) -> str:
    """botocore's path-style S3 endpoint for a region."""
    return (
        "https://s3.amazonaws.com"
        if region == "us-east-1"
        else f"https://s3.{region}.amazonaws.com"
    )


@lru_cache(maxsize=8)
def _signing_key(secret_key: str, day: str, region: str) -> bytes:
    import hashlib
    import hmac

    key = f"AWS4{secret_key}".encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _content_disposition(filename: str) -> str:
    """RFC 6266 attachment with an ASCII fallback; quotes, slashes and controls dropped."""
    cleaned = "".join(c for c in filename if c.isprintable() and c not in '"\\/;')
    cleaned = cleaned.strip(" .")[:150] or "download"
    fallback = cleaned.encode("ascii", "replace").decode("ascii").replace("?", "_")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(cleaned, safe='')}"


# ---------------------------------------------------------------------------------------------
# URL safety for copy_from_url


@dataclass(frozen=True, slots=True)
class _HostRule:
    """One allowlist entry.

    `.example.com`      the domain and its subdomains; https on 443; public addresses only
    `cdn.example.com`   exactly that host; https on 443; public addresses only
    `127.0.0.1:8001`    exactly that host and port; http or https; any address (the dev
                        stack's simulators live on loopback). `http://` or `https://` in
                        front pins the scheme.
    """

    host: str
    suffix: bool
    port: int | None
    schemes: frozenset[str]

    @classmethod
    def parse(cls, entry: str) -> _HostRule:
        text = entry.strip().lower()
        schemes = frozenset({"https"})
        scheme, sep, rest = text.partition("://")
        if sep:
            if scheme not in ("http", "https"):
                raise ValueError(f"allowed host {entry!r}: scheme must be http or https")
            text, schemes = rest, frozenset({scheme})
        host, port = text, None
        if text.startswith("["):  # [::1]:8001
            host, closed, tail = text[1:].partition("]")
            if not closed or (tail and not tail.startswith(":")):
                raise ValueError(f"allowed host {entry!r} is not a host name")
            port_text = tail.removeprefix(":") or None
            port = int(port_text) if port_text else None
        elif text.count(":") == 1:
            host, port_text = text.split(":")
            port = int(port_text)
        if not host.strip(".") or "/" in host or "@" in host or not host.isascii():
            raise ValueError(f"allowed host {entry!r} is not a host name")
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"allowed host {entry!r}: port out of range")
        if port is not None:
            if not sep:
                schemes = frozenset({"http", "https"})
            return cls(host, False, port, schemes)
        if schemes != {"https"}:
            raise ValueError(f"allowed host {entry!r}: plain http needs an exact host:port")
        if host.startswith("."):
            return cls(host, True, None, schemes)
        return cls(host, False, None, schemes)

    def matches(self, scheme: str, host: str, port: int) -> bool:
        if scheme not in self.schemes:
            return False
        if self.port is not None:
            return host == self.host and port == self.port
        if port != 443:
            return False
        if self.suffix:
            return host.endswith(self.host) or host == self.host[1:]
        return host == self.host

    @property
    def trusted_endpoint(self) -> bool:
        """An exact host:port entry is trusted wherever it points (loopback simulators)."""
        return self.port is not None


def _is_public_address(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None:
            ip = embedded
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_multicast
        or ip.is_reserved
    )


@dataclass(frozen=True, slots=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    rule: _HostRule

    @property
    def origin(self) -> tuple[str, str, int]:
        return (self.scheme, self.host, self.port)


def _vet_url(url: str, rules: list[_HostRule]) -> _Target:
    """Refuse before any connection: scheme, userinfo, allowlist, then the resolved addresses."""
    if not isinstance(url, str) or not url.isascii() or any(c.isspace() for c in url):
        raise UnsafeURL("the URL must be plain ASCII without spaces")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURL("the URL cannot be parsed") from exc
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        raise UnsafeURL("only http(s) URLs with a host are allowed")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURL("URLs with credentials are not allowed")
    if "\\" in url or not _HOST_RE.fullmatch(host):
        raise UnsafeURL("the URL host is not in canonical form")
    if port is None:
        port = 443 if scheme == "https" else 80
    elif port == 0:
        raise UnsafeURL("port 0 is not a port")
    rule = next((r for r in rules if r.matches(scheme, host, port)), None)
    if rule is None:
        raise UnsafeURL(f"{scheme}://{host}:{port} is not an allowed video host")
    if not rule.trusted_endpoint:
        for address in _resolve(host, port):
            if not _is_public_address(address):
                raise UnsafeURL(f"{host} resolves to a non-public address")
    return _Target(url, scheme, host, port, rule)


def _resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ProviderUnavailable(f"cannot resolve {host}") from exc
    addresses = [str(info[4][0]) for info in infos]
    if not addresses:
        raise ProviderUnavailable(f"{host} has no address")
    return addresses


# ---------------------------------------------------------------------------------------------
# The storage client


class Storage:
    """Everything our functions do with the bucket.

    The boto3 client is created on first use (a client costs ~100 ms), once per instance
    and thread-safely, so a Lambda container builds it at most once.
    """

    _page_size = 1000  # list and batch-delete page (S3's maximum for both)

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None,
        region: str,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        upload_method: UploadMethod = "post",
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes")
        if upload_method not in ("post", "put"):
            raise ValueError("upload_method must be 'post' or 'put'")
        self.bucket = bucket
        self.endpoint_url = endpoint_url or None
        self.region = region
        self.part_size = part_size
        self.upload_method: UploadMethod = upload_method
        self._access_key_id = access_key_id
        self._secret_access_key = secret_access_key
        self._client: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        """Explicit keys only for an S3-compatible endpoint (Supabase, moto).

        On AWS the Lambda role's temporary credentials (which include a session token that
        `Settings` does not carry) come from boto3's default chain.
        """
        endpoint = settings.s3_endpoint_url or None
        key_id = (settings.s3_access_key_id or settings.aws_access_key_id) if endpoint else None
        secret = settings.s3_secret_access_key or settings.aws_secret_access_key
        return cls(
            settings.s3_bucket,
            endpoint_url=endpoint,
            region=settings.aws_region,
            access_key_id=key_id,
            secret_access_key=secret.get_secret_value() if (endpoint and secret) else None,
            upload_method=settings.upload_method,
        )

    # -- the client -------------------------------------------------------------------------

    @property
    def client(self) -> Any:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self._access_key_id,
            aws_secret_access_key=self._secret_access_key,
            region_name=self.region,
        )
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=3,
            read_timeout=20,
            # S3-compatible endpoints (Supabase) may reject boto3's default CRC trailers.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def _call(self, operation: str, **params: Any) -> Any:
        """One S3 call with botocore's errors mapped to ours (404 → NotFound)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code != "NoSuchBucket" and (code in ("404", "NoSuchKey") or status == 404):
                raise NotFound(f"no object for {operation}") from exc
            if code in ("EntityTooLarge",):
                raise PayloadTooLarge(str(error.get("Message") or code)) from exc
            raise ProviderUnavailable(
                f"storage {operation} failed: {code}", provider_code=code
            ) from exc
        except BotoCoreError as exc:
            raise ProviderUnavailable(f"storage {operation} failed: {type(exc).__name__}") from exc

    # -- keys -------------------------------------------------------------------------------

    @staticmethod
    def reference_key(user_id: str | uuid.UUID, ext: str) -> str:
        """A fresh key; the user's filename never enters it."""
        if ext not in _TYPE_BY_EXT:
            raise InvalidRequest(f"unsupported extension {ext!r}")
        return f"references/{_canonical_uuid(user_id, 'user id')}/{uuid.uuid4().hex}.{ext}"

    @staticmethod
    def video_key(user_id: str | uuid.UUID, generation_id: str | uuid.UUID) -> str:
        user = _canonical_uuid(user_id, "user id")
        return f"videos/{user}/{_canonical_uuid(generation_id, 'generation id')}.mp4"

    @staticmethod
    def export_key(user_id: str | uuid.UUID, export_id: str | uuid.UUID) -> str:
        user = _canonical_uuid(user_id, "user id")
        return f"exports/{user}/{_canonical_uuid(export_id, 'export id')}.json"

    @staticmethod
    def input_key(
        user_id: str | uuid.UUID, generation_id: str | uuid.UUID, index: int, reference_key: str
    ) -> str:
        """Where a generation's own copy of its `index`-th reference lives (same extension)."""
        ext = reference_key.rsplit(".", 1)[-1]
        if ext not in _TYPE_BY_EXT or not 0 <= index < 100:
            raise InvalidRequest("not a reference key")
        user = _canonical_uuid(user_id, "user id")
        return f"inputs/{user}/{_canonical_uuid(generation_id, 'generation id')}/{index}.{ext}"

    @staticmethod
    def parse_video_key(key: str) -> tuple[str, str] | None:
        """(user_id, generation_id) for exactly `videos/<uuid>/<uuid>.mp4`, else None.

        The key comes from an S3 event, so anything we would not have written is refused.
        """
        if not isinstance(key, str) or len(key) > 200:
            return None
        match = _VIDEO_KEY.fullmatch(key)
        return (match.group(1), match.group(2)) if match else None

    # -- uploads ----------------------------------------------------------------------------

    def presign_upload(
        self,
        user_id: str | uuid.UUID,
        content_type: str,
        bytes_: int,
        *,
        now: datetime | None = None,
    ) -> PresignedUpload:
        """A presigned upload pinned to the key, the exact type and the size: a POST policy
        (type, size range) on AWS S3, or a PUT whose signature covers the exact type and
        byte length where there is no POST (Supabase Storage; `S3_UPLOAD_METHOD=put`).

        Real S3 enforces both (moto enforces neither; the dev stack's emulator checks PUT
        signatures); `check_reference` re-checks at use anyway.
        """
        upload_type = UPLOAD_TYPES.get(content_type) if isinstance(content_type, str) else None
        if upload_type is None:
            allowed = ", ".join(UPLOAD_TYPES)
            raise InvalidRequest(f"content_type must be one of {allowed}")
        if isinstance(bytes_, bool) or not isinstance(bytes_, int) or bytes_ < 1:
            raise InvalidRequest("bytes must be a positive integer")
        if bytes_ > upload_type.max_bytes:
            raise PayloadTooLarge(
                f"{content_type} uploads are limited to {upload_type.max_bytes} bytes"
            )
        key = self.reference_key(user_id, upload_type.ext)
        signed_at = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        expires_at = signed_at + timedelta(seconds=UPLOAD_EXPIRY_SECONDS)
        if self.upload_method == "put":
            access_key, secret_key, token = self._signing_credentials()
            url = presign_put_url(
                endpoint=self.endpoint_url or _aws_endpoint(self.region),
                bucket=self.bucket,
                key=key,
                region=self.region,
                access_key=access_key,
                secret_key=secret_key,
                token=token,
                seconds=UPLOAD_EXPIRY_SECONDS,
                content_type=content_type,
                content_length=bytes_,
                now=signed_at,
            )
            return PresignedUpload(
                key=key,
                method="PUT",
                url=url,
                fields={},
                headers={"Content-Type": content_type},
                expires_at=expires_at,
            )
        from botocore.exceptions import BotoCoreError

        try:
            post = self.client.generate_presigned_post(
                Bucket=self.bucket,
                Key=key,
                Fields={"Content-Type": content_type},
                Conditions=[
                    {"Content-Type": content_type},
                    ["content-length-range", 1, upload_type.max_bytes],
                ],
                ExpiresIn=UPLOAD_EXPIRY_SECONDS,
            )
        except BotoCoreError as exc:
            raise ProviderUnavailable("cannot sign the upload") from exc
        return PresignedUpload(
            key=key,
            method="POST",
            url=post["url"],
            fields=dict(post["fields"]),
            headers={},
            expires_at=expires_at,
        )

    def check_reference(
        self, key: str, user_id: str | uuid.UUID, expected_kind: Kind | None = None
    ) -> ReferenceInfo:
        """Is `key` the caller's own, finished, genuine upload within the provider's limits?

        Another user's key is NotFound, exactly like a missing one, so keys cannot be probed.
        A video's index is read too (its duration is part of the price): the first ranged
        GET covers the start of the file, a second one only an index stored at the end.
        """
        user = _canonical_uuid(user_id, "user id")
        match = None
        if isinstance(key, str):
            match = _REFERENCE_KEY.fullmatch(key) or _INPUT_KEY.fullmatch(key)
        if match is None or match.group(1) != user:
            raise NotFound("no such upload")
        expected_type = _TYPE_BY_EXT[match.group(match.lastindex or 0)]
        upload_type = UPLOAD_TYPES[expected_type]
        if expected_kind is not None and upload_type.kind != expected_kind:
            wanted = "an image" if expected_kind == "image" else "a video"
            raise InvalidRequest(f"{key} is not {wanted}")
        info = self.head(key)
        if info is None:
            raise NotFound("no such upload")
        if info.content_type.split(";", 1)[0].strip().lower() != expected_type:
            raise InvalidRequest(f"{key} was uploaded as {info.content_type!r}")
        if info.size < 1:
            raise InvalidRequest(f"{key} is empty")
        if info.size > upload_type.max_bytes:
            raise PayloadTooLarge(f"{key} is larger than {upload_type.max_bytes} bytes")
        video = upload_type.kind == "video"
        head = self._read_range(key, 0, min(info.size, HEAD_BYTES if video else SNIFF_BYTES))
        if not _sniff(expected_type, head):
            raise InvalidRequest(f"{key} is not a {expected_type} file")
        if not video:
            return ReferenceInfo(upload_type.kind, expected_type, info.size, etag=info.etag)
        try:
            index = locate_moov(head, 0, info.size)
            if isinstance(index, tuple):
                offset, length = index
                index = locate_moov(self._read_range(key, offset, length), offset, info.size)
                if isinstance(index, tuple):
                    raise UnreadableMedia("the video's index (moov box) was not found")
            details = parse_moov(index)
        except UnreadableMedia as exc:
            raise UnreadableMedia(f"{key}: {exc.detail}") from None
        return ReferenceInfo("video", expected_type, info.size, details, info.etag)

    def freeze_reference(
        self, key: str, user_id: str | uuid.UUID, generation_id: uuid.UUID, index: int
    ) -> tuple[str, str]:
        """Copy the caller's upload to the generation's own key: (that key, its ETag).

        An upload's presigned POST (or PUT) stays usable until it expires, so the object
        under a reference key can change after it was checked. The copy cannot: only we
        write under `inputs/`. Its ETag tells whether it holds the bytes that were checked.
        """
        user = _canonical_uuid(user_id, "user id")
        match = _REFERENCE_KEY.fullmatch(key) if isinstance(key, str) else None
        if match is None or match.group(1) != user:
            raise NotFound("no such upload")
        target = self.input_key(user, generation_id, index, key)
        copied = self._call(
            "copy_object", Key=target, CopySource={"Bucket": self.bucket, "Key": key}
        )
        return target, _clean_etag(copied.get("CopyObjectResult", {}).get("ETag"))

    def _read_range(self, key: str, offset: int, length: int) -> bytes:
        last = offset + length - 1
        response = self._call("get_object", Key=key, Range=f"bytes={offset}-{last}")
        body = response["Body"]
        try:
            data: bytes = body.read(length)
        except Exception as exc:  # noqa: BLE001 - botocore/urllib3 stream errors
            raise ProviderUnavailable("storage read failed") from exc
        finally:
            body.close()
        return data

    # -- objects ----------------------------------------------------------------------------

    def presigned_get(self, key: str, seconds: int, *, filename: str | None = None) -> str:
        """A short-lived download link; with `filename` the browser saves it under that name."""
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise InvalidRequest("a presigned URL lives between 1 second and 7 days")
        key = self._checked_key(key)
        disposition = _content_disposition(filename) if filename is not None else None
        access_key, secret_key, token = self._signing_credentials()
        return presign_get_url(
            endpoint=self.endpoint_url or _aws_endpoint(self.region),
            bucket=self.bucket,
            key=key,
            region=self.region,
            access_key=access_key,
            secret_key=secret_key,
            token=token,
            seconds=seconds,
            disposition=disposition,
            now=datetime.now(UTC),
        )

    def link_signer(self, seconds: int, *, now: datetime | None = None) -> LinkSigner:
        """Signs many download links valid `seconds` from `now` (privacy exports)."""
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise InvalidRequest("a presigned URL lives between 1 second and 7 days")
        access_key, secret_key, token = self._signing_credentials()
        return LinkSigner(
            endpoint=self.endpoint_url or _aws_endpoint(self.region),
            bucket=self.bucket,
            region=self.region,
            access_key=access_key,
            secret_key=secret_key,
            token=token,
            seconds=seconds,
            now=now or datetime.now(UTC),
        )

    def _signing_credentials(self) -> tuple[str, str, str | None]:
        """Explicit keys; else the Lambda role's, from the environment or (SnapStart, ECS)
        from the container credentials endpoint, both without botocore; else botocore's
        own chain (a developer's AWS profile), through its public API."""
        if self._access_key_id and self._secret_access_key:
            return self._access_key_id, self._secret_access_key, None
        env = os.environ
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return (
                env["AWS_ACCESS_KEY_ID"],
                env["AWS_SECRET_ACCESS_KEY"],
                env.get("AWS_SESSION_TOKEN"),
            )
        if container_credentials_uri(env):
            return _container_credentials.get(env)
        from botocore.exceptions import BotoCoreError
        from botocore.session import Session

        try:
            found = Session().get_credentials()
            frozen = found.get_frozen_credentials() if found is not None else None
        except BotoCoreError as exc:
            raise ProviderUnavailable("no credentials to sign the download") from exc
        if frozen is None:
            raise ProviderUnavailable("no credentials to sign the download")
        return frozen.access_key, frozen.secret_key, frozen.token

    def head(self, key: str) -> ObjectInfo | None:
        try:
            response = self._call("head_object", Key=self._checked_key(key))
        except NotFound:
            return None
        return ObjectInfo(
            size=int(response.get("ContentLength", 0)),
            content_type=str(response.get("ContentType", "")),
            etag=_clean_etag(response.get("ETag")),
        )

    def delete(self, key: str) -> None:
        """Idempotent: deleting a missing object succeeds."""
        try:
            self._call("delete_object", Key=self._checked_key(key))
        except NotFound:
            return

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (a folder, ending in `/`); returns the count.

        Unfinished multipart uploads under it are aborted too: their parts hold user data.
        """
        if (
            not isinstance(prefix, str)
            or not prefix.endswith("/")
            or not _SAFE_KEY.fullmatch(prefix)
            or "//" in prefix
            or ".." in prefix
        ):
            raise InvalidRequest("prefix must be a folder such as 'references/<user>/'")
        deleted = 0
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            page = self._call("list_objects_v2", Prefix=prefix, MaxKeys=self._page_size, **extra)
            deleted += self.delete_keys([item["Key"] for item in page.get("Contents", [])])
            if not page.get("IsTruncated"):
                break
            token = page.get("NextContinuationToken")
        self._abort_uploads(prefix)
        return deleted

    def delete_keys(self, keys: list[str]) -> int:
        """Delete these objects, a page of 1000 per request; missing ones count as deleted."""
        for start in range(0, len(keys), self._page_size):
            batch = [{"Key": self._checked_key(k)} for k in keys[start : start + self._page_size]]
            result = self._call("delete_objects", Delete={"Objects": batch, "Quiet": True})
            errors = result.get("Errors") or []
            if errors:
                first = errors[0]
                raise ProviderUnavailable(
                    f"could not delete {len(errors)} of {len(batch)} objects",
                    provider_code=str(first.get("Code", "")),
                )
        return len(keys)

    def _abort_uploads(self, prefix: str) -> None:
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            extra: dict[str, str] = {}
            if key_marker:
                extra = {"KeyMarker": key_marker, "UploadIdMarker": upload_marker or ""}
            page = self._call("list_multipart_uploads", Prefix=prefix, **extra)
            for upload in page.get("Uploads") or []:
                if upload["Key"].startswith(prefix):
                    self._call(
                        "abort_multipart_upload", Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            if not page.get("IsTruncated"):
                return
            key_marker = page.get("NextKeyMarker")
            upload_marker = page.get("NextUploadIdMarker")

    def put_json_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        """Write a JSON document produced piece by piece (privacy exports), memory flat
        (two parts at most: one filling while the previous one uploads, so producing the
        document and sending it overlap).

        If `chunks` raises, the partial upload is aborted and the error propagates.
        """
        key = self._checked_key(key)
        with _ObjectWriter(self, key, "application/json", overlap=True) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.finish()

    # -- copy from the provider -------------------------------------------------------------

    def copy_from_url(
        self,
        url: str,
        key: str,
        *,
        allowed_hosts: list[str],
        max_bytes: int,
        content_type: str = "video/mp4",
        timeout: float = 300.0,
    ) -> ObjectInfo:
        """Stream the provider's video into the bucket without holding it in memory.

        The URL is vetted before anything connects (allowlist, https, resolved addresses),
        redirects are followed by hand and only on the same origin, and the body is checked
        for type, MP4 magic and size while it streams; on any failure nothing is left behind.
        `timeout` bounds the whole transfer (a trickling server cannot hold the Lambda).
        """
        import httpx

        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
            raise ValueError("max_bytes must be a positive integer")
        rules = [_HostRule.parse(entry) for entry in allowed_hosts]
        key = self._checked_key(key)
        target = _vet_url(url, rules)
        origin = target.origin
        deadline = time.monotonic() + timeout
        accepted_types = _COPY_CONTENT_TYPES | {content_type}
        client = httpx.Client(
            follow_redirects=False,
            trust_env=False,  # no proxies or netrc from the environment
            timeout=httpx.Timeout(connect=5.0, read=30.0, write=10.0, pool=5.0),
            headers={"Accept-Encoding": "identity", "User-Agent": "izgens-storage/1"},
        )
        try:
            with client:
                for _hop in range(MAX_REDIRECTS + 1):
                    request = client.build_request("GET", target.url)
                    _same_parse(request.url, target)
                    response = client.send(request, stream=True)
                    try:
                        if response.is_redirect:
                            location = urljoin(target.url, response.headers.get("location", ""))
                            if _origin_of(location) != origin:
                                raise UnsafeURL("redirect to another host refused")
                            target = _vet_url(location, rules)
                            continue
                        _check_peer(response, target)
                        return self._store_response(
                            response, key, content_type, accepted_types, max_bytes, deadline
                        )
                    finally:
                        response.close()
                raise UnsafeURL(f"more than {MAX_REDIRECTS} redirects")
        except IzgensError:
            raise
        except httpx.InvalidURL as exc:
            raise UnsafeURL("the URL is not valid") from exc
        except httpx.HTTPError as exc:
            raise ProviderUnavailable(f"video download failed: {type(exc).__name__}") from exc

    def _store_response(
        self,
        response: Any,
        key: str,
        content_type: str,
        accepted_types: frozenset[str],
        max_bytes: int,
        deadline: float,
    ) -> ObjectInfo:
        if response.status_code != 200:
            raise ProviderUnavailable(
                f"video host answered {response.status_code}",
                provider_code=f"http_{response.status_code}",
            )
        served = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if served not in accepted_types:
            raise UnexpectedContent(f"video host served {served or 'no content type'}")
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise PayloadTooLarge(f"the video is larger than {max_bytes} bytes")
        head = b""
        total = 0
        with _ObjectWriter(self, key, content_type) as writer:
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise PayloadTooLarge(f"the video is larger than {max_bytes} bytes")
                if len(head) < 12:
                    head += chunk[: 12 - len(head)]
                    if len(head) >= 12 and not _looks_like_mp4(head):
                        raise UnexpectedContent("the body is not an MP4 file")
                if time.monotonic() > deadline:
                    raise ProviderUnavailable("the video download took too long")
                writer.write(chunk)
            if not _looks_like_mp4(head):
                raise UnexpectedContent("the body is not an MP4 file")
            return writer.finish()

    # -- events -----------------------------------------------------------------------------

    @staticmethod
    def iter_object_created(event: Mapping[str, Any]) -> Iterator[ObjectCreated]:
        """ObjectCreated records of an S3 notification, an SQS message body holding one, or
        an SQS Lambda event (records whose `body` is such a message). Test events and other
        event types yield nothing; a malformed record is logged and skipped, never retried
        forever.
        """
        if not isinstance(event, Mapping) or event.get("Event") == "s3:TestEvent":
            return
        for record in event.get("Records") or []:
            if not isinstance(record, Mapping):
                continue
            if record.get("eventSource") == "aws:sqs" and isinstance(record.get("body"), str):
                try:
                    inner = json.loads(record["body"])
                except ValueError:
                    log.warning("skipping an SQS record whose body is not JSON")
                    continue
                yield from Storage.iter_object_created(inner)
                continue
            name = str(record.get("eventName", ""))
            if not name.startswith("ObjectCreated:"):
                continue
            try:
                obj = record["s3"]["object"]
                created = ObjectCreated(
                    key=unquote_plus(str(obj["key"])),
                    size=int(obj.get("size") or 0),
                    etag=_clean_etag(obj.get("eTag")),
                    event_name=name,
                )
            except (KeyError, TypeError, ValueError, AttributeError):
                log.warning("skipping a malformed S3 record %s", name)
                continue
            yield created

    # -- dev and test setup -----------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if missing (dev stack and tests; on AWS the template owns it)."""
        try:
            self._call("head_bucket")
            return
        except NotFound:
            pass
        params: dict[str, Any] = {}
        if self.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._call("create_bucket", **params)
        except ProviderUnavailable as exc:
            if exc.provider_code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    def configure_video_notifications(self, queue_arn: str) -> None:
        """ObjectCreated under `videos/` → the SQS queue (the dev stack's stand-in for the
        S3 → Lambda event that infra/template.yaml declares on AWS)."""
        self._call(
            "put_bucket_notification_configuration",
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "Id": VIDEO_NOTIFICATION_ID,
                        "QueueArn": queue_arn,
                        "Events": ["s3:ObjectCreated:*"],
                        "Filter": {
                            "Key": {"FilterRules": [{"Name": "prefix", "Value": "videos/"}]}
                        },
                    }
                ]
            },
        )

    @staticmethod
    def _checked_key(key: str) -> str:
        """Keys we build are plain ASCII paths; refuse anything else before it reaches S3."""
        if (
            not isinstance(key, str)
            or not _SAFE_KEY.fullmatch(key)
            or key.endswith("/")
            or "//" in key
            or ".." in key
        ):
            raise InvalidRequest("not a valid object key")
        return key


def _origin_of(url: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port if parts.port is not None else (443 if scheme == "https" else 80)
        return (scheme, parts.hostname or "", port)
    except ValueError:
        return None


def _same_parse(parsed: Any, target: _Target) -> None:
    """httpx must read the URL exactly as we vetted it (no parser differential)."""
    port = parsed.port if parsed.port is not None else (443 if parsed.scheme == "https" else 80)
    if (parsed.scheme, parsed.host, port) != target.origin:
        raise UnsafeURL("the URL is ambiguous")


def _check_peer(response: Any, target: _Target) -> None:
    """Re-check the address actually connected to (a DNS answer can change after vetting)."""
    if target.rule.trusted_endpoint:
        return
    stream = response.extensions.get("network_stream")
    peer = stream.get_extra_info("server_addr") if stream is not None else None
    if peer and not _is_public_address(str(peer[0])):
        raise UnsafeURL(f"{target.host} connected to a non-public address")


class _ObjectWriter:
    """Buffers one part at a time (preallocated, so memory stays at ~part_size) and becomes a
    multipart upload only when the body outgrows a single part. Aborts on any exception.

    With `overlap`, a full part is sent by a helper thread while the caller fills the next
    one (two part buffers, at most one upload in flight): the producer never waits for S3
    unless it is faster than S3.
    """

    def __init__(
        self, storage: Storage, key: str, content_type: str, *, overlap: bool = False
    ) -> None:
        self._storage = storage
        self._key = key
        self._content_type = content_type
        self._buffer = bytearray(storage.part_size)
        self._spare: bytearray | None = bytearray(storage.part_size) if overlap else None
        self._sender: Any = None
        self._in_flight: Any = None  # the Future of the part being sent
        self._filled = 0
        self._size = 0
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def __enter__(self) -> _ObjectWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is not None:
                self.abort()
        finally:
            if self._sender is not None:
                self._sender.shutdown(wait=True)
            self._buffer = bytearray()
            self._spare = None

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            room = len(self._buffer) - self._filled
            take = min(room, len(view))
            self._buffer[self._filled : self._filled + take] = view[:take]
            self._filled += take
            self._size += take
            view = view[take:]
            if self._filled == len(self._buffer):
                self._flush_part()

    def _flush_part(self) -> None:
        if self._upload_id is None:
            created = self._storage._call(
                "create_multipart_upload", Key=self._key, ContentType=self._content_type
            )
            self._upload_id = str(created["UploadId"])
        number = len(self._parts) + 1
        self._parts.append({"PartNumber": number})
        body = self._buffer if self._filled == len(self._buffer) else self._last_piece()
        self._filled = 0
        if self._spare is None:
            self._send(number, body)
            return
        self._wait_in_flight()  # the spare buffer is free again once its part is sent
        if self._sender is None:
            from concurrent.futures import ThreadPoolExecutor

            self._sender = ThreadPoolExecutor(1, thread_name_prefix="izgens-upload")
        self._in_flight = self._sender.submit(self._send, number, body)
        self._buffer, self._spare = self._spare, body

    def _send(self, number: int, body: bytearray) -> None:
        result = self._storage._call(
            "upload_part", Key=self._key, UploadId=self._upload_id, PartNumber=number, Body=body
        )
        self._parts[number - 1]["ETag"] = result["ETag"]

    def _wait_in_flight(self) -> None:
        if self._in_flight is not None:
            future, self._in_flight = self._in_flight, None
            future.result()  # an upload error surfaces here, in the caller's thread

    def _last_piece(self) -> bytearray:
        """The buffer cut down to its filled length in place: slicing would copy a part."""
        del self._buffer[self._filled :]
        return self._buffer

    def finish(self) -> ObjectInfo:
        if self._upload_id is None:
            result = self._storage._call(
                "put_object",
                Key=self._key,
                Body=self._last_piece(),
                ContentType=self._content_type,
            )
        else:
            if self._filled or not self._parts:
                self._flush_part()
            self._wait_in_flight()
            result = self._storage._call(
                "complete_multipart_upload",
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
            self._upload_id = None
        return ObjectInfo(
            size=self._size, content_type=self._content_type, etag=_clean_etag(result.get("ETag"))
        )

    def abort(self) -> None:
        if self._upload_id is None:
            return
        if self._in_flight is not None:
            from concurrent.futures import CancelledError

            future, self._in_flight = self._in_flight, None
            future.cancel()
            try:
                future.result()
            except (CancelledError, IzgensError):
                log.info("part upload of %s ended by the abort", self._key)
        upload_id, self._upload_id = self._upload_id, None
        try:
            self._storage._call("abort_multipart_upload", Key=self._key, UploadId=upload_id)
        except IzgensError:
            log.warning("could not abort multipart upload of %s", self._key, exc_info=True)


_ECS_HOST = "http://169.254.170.2"
REFRESH_BEFORE_SECONDS = 5 * 60  # botocore's own advisory refresh window for these


def container_credentials_uri(env: Mapping[str, str]) -> str | None:
    """The endpoint Lambda (with SnapStart) and ECS serve the role's credentials from."""
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return _ECS_HOST + env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    return None


class ContainerCredentials:
    """The role's temporary credentials from the container credentials endpoint, kept
    until five minutes before they expire, then fetched again (one GET; the standard
    library, so signing a download link imports neither boto3 nor botocore)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, str, str | None] | None = None
        self._expires = 0.0

    def reset(self) -> None:
        """Forget them (after a SnapStart restore: the snapshot's may be stale)."""
        with self._lock:
            self._cached, self._expires = None, 0.0

    def get(self, env: Mapping[str, str]) -> tuple[str, str, str | None]:
        with self._lock:
            if self._cached is None or self._clock() >= self._expires - REFRESH_BEFORE_SECONDS:
                self._cached, self._expires = self._fetch(env)
            return self._cached

    def _fetch(self, env: Mapping[str, str]) -> tuple[tuple[str, str, str | None], float]:
        import urllib.request

        uri = container_credentials_uri(env)
        if uri is None:
            raise ProviderUnavailable("no container credentials endpoint is configured")
        request = urllib.request.Request(uri, headers={"Accept": "application/json"})
        token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        try:
            if token_file and not token:
                with open(token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            if token:
                request.add_header("Authorization", token)
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - env's URI
                body = json.loads(answer.read(64 * 1024))
            expires = datetime.fromisoformat(str(body["Expiration"]).replace("Z", "+00:00"))
            found = (str(body["AccessKeyId"]), str(body["SecretAccessKey"]), body.get("Token"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailable("cannot read the container credentials") from exc
        return found, expires.timestamp()


_container_credentials = ContainerCredentials()


def reset_credentials() -> None:
    _container_credentials.reset()


@lru_cache(maxsize=1)
def get_storage() -> Storage:
    """The process-wide Storage built from settings (the client itself is still lazy)."""
    from izgens.config import get_settings

    return Storage.from_settings(get_settings())
