"""Reference uploads: the presigned form a browser uploads with, and the check of an upload when a generation names it (owner, type, magic bytes, size, a video's index)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from izgens.errors import (
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ProviderUnavailable,
)
from izgens.media import HEAD_BYTES, UnreadableMedia, locate_moov, parse_moov
from izgens.storage.keys import (
    _INPUT_KEY,
    _REFERENCE_KEY,
    _TYPE_BY_EXT,
    SNIFF_BYTES,
    UPLOAD_EXPIRY_SECONDS,
    UPLOAD_TYPES,
    Kind,
    PresignedUpload,
    ReferenceInfo,
    _canonical_uuid,
    _clean_etag,
    _sniff,
)
from izgens.storage.presign import presign_put_url


class _References:
    """Upload forms and the checks of uploaded references."""

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
            url = presign_put_url(
                **self._signing(),
                key=key,
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
