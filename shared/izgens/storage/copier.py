"""The streaming copy of the provider's video (and of exports) into the bucket: checked while it streams, multipart, memory flat, nothing left behind on failure."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from izgens.errors import (
    InvalidRequest,
    IzgensError,
    PayloadTooLarge,
    ProviderUnavailable,
)
from izgens.storage.keys import ObjectInfo, _clean_etag, _looks_like_mp4
from izgens.storage.urls import (
    MAX_REDIRECTS,
    UnsafeURL,
    _check_peer,
    _HostRule,
    _origin_of,
    _same_parse,
    _vet_url,
)

if TYPE_CHECKING:
    from izgens.storage.client import Storage

__all__ = ["UnexpectedContent"]


log = logging.getLogger("izgens.storage")


class UnexpectedContent(InvalidRequest):
    title = "The content is not of the expected type"


_COPY_CONTENT_TYPES = frozenset({"video/mp4", "application/octet-stream"})


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


class _Copier:
    """Writes into the bucket that stream."""

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
