"""The Storage class: the boto3 client (built on first use), object operations, the S3 event parse and bucket setup."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from izgens.clients import Shared
from izgens.errors import (
    NotFound,
    PayloadTooLarge,
    ProviderUnavailable,
)

if TYPE_CHECKING:
    from izgens.config import Settings
from izgens.storage.copier import _Copier
from izgens.storage.credentials import _Signing
from izgens.storage.keys import (
    _SAFE_KEY,
    _TYPE_BY_EXT,
    _VIDEO_KEY,
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    ObjectCreated,
    ObjectInfo,
    UploadMethod,
    _canonical_uuid,
    _clean_etag,
)
from izgens.storage.presign import LinkSigner, _content_disposition, presign_get_url
from izgens.storage.references import _References

__all__ = ["Storage", "get_storage", "reset_storage"]

log = logging.getLogger("izgens.storage")

VIDEO_NOTIFICATION_ID = "izgens-videos"


def _build_storage() -> Storage:
    """The process-wide Storage built from settings (the boto3 client itself is still lazy)."""
    from izgens.config import get_settings

    return Storage.from_settings(get_settings())


_storage = Shared("storage", _build_storage)
get_storage = _storage.get
reset_storage = _storage.reset


class Storage(_Signing, _References, _Copier):
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

    @staticmethod
    def reference_key(user_id: str | uuid.UUID, ext: str) -> str:
        """A fresh key; the user's filename never enters it."""
        if ext not in _TYPE_BY_EXT:
            raise ValueError(f"unsupported extension {ext!r}")
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
            raise ValueError("not a reference key")
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

    def presigned_get(self, key: str, seconds: int, *, filename: str | None = None) -> str:
        """A short-lived download link; with `filename` the browser saves it under that name."""
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise ValueError("a presigned URL lives between 1 second and 7 days")
        key = self._checked_key(key)
        disposition = _content_disposition(filename) if filename is not None else None
        return presign_get_url(
            **self._signing(),
            key=key,
            seconds=seconds,
            disposition=disposition,
            now=datetime.now(UTC),
        )

    def link_signer(self, seconds: int, *, now: datetime | None = None) -> LinkSigner:
        """Signs many download links valid `seconds` from `now` (privacy exports)."""
        if not 1 <= seconds <= 7 * 24 * 3600:
            raise ValueError("a presigned URL lives between 1 second and 7 days")
        return LinkSigner(**self._signing(), seconds=seconds, now=now or datetime.now(UTC))

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
            raise ValueError("prefix must be a folder such as 'references/<user>/'")
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
            raise ValueError("not a valid object key")
        return key
