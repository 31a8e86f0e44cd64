"""Presigned uploads and the reference check, against moto over real HTTP.

moto enforces none of a POST policy's conditions (toolchain-notes §4), so the policy we sign
is asserted as a document, and check_reference is what actually refuses bad uploads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from izgens.errors import InvalidRequest, NotFound, PayloadTooLarge
from izgens.media import VideoInfo
from izgens.storage import UPLOAD_EXPIRY_SECONDS, UPLOAD_TYPES, ReferenceInfo, Storage
from tests.support.mp4 import tiny_mp4

from .conftest import JPEG, PNG, WEBP


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


def test_presigned_post_policy_pins_key_type_size_and_expiry(
    storage: Storage, user_id: str
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    upload = storage.presign_upload(user_id, "image/png", 1234)
    after = datetime.now(UTC)

    key = upload["key"]
    assert key.startswith(f"references/{user_id}/") and key.endswith(".png")
    fields = upload["fields"]
    assert fields["key"] == key
    assert fields["Content-Type"] == "image/png"
    assert fields["x-amz-algorithm"] == "AWS4-HMAC-SHA256"  # SigV4, never SigV2
    assert "AWSAccessKeyId" not in fields and "signature" not in fields

    policy = _policy(fields)
    conditions = policy["conditions"]
    assert {"key": key} in conditions
    assert {"bucket": storage.bucket} in conditions
    assert {"Content-Type": "image/png"} in conditions  # equality, not starts-with
    assert ["content-length-range", 1, UPLOAD_TYPES["image/png"].max_bytes] in conditions
    assert not [c for c in conditions if isinstance(c, list) and c[0] == "starts-with"]

    expiration = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert before < expiration <= after + timedelta(minutes=15)
    assert UPLOAD_EXPIRY_SECONDS <= 15 * 60
    assert before < upload["expires_at"] <= expiration


def test_video_uploads_get_the_video_limit(storage: Storage, user_id: str) -> None:
    upload = storage.presign_upload(user_id, "video/quicktime", 200_000_000)
    assert upload["key"].endswith(".mov")
    assert ["content-length-range", 1, 200_000_000] in _policy(upload["fields"])["conditions"]


@pytest.mark.parametrize(
    "content_type", ["image/gif", "text/plain", "image/PNG", "image/png; x=1", "", "video/webm"]
)
def test_presign_refuses_other_types(storage: Storage, user_id: str, content_type: str) -> None:
    with pytest.raises(InvalidRequest):
        storage.presign_upload(user_id, content_type, 100)


@pytest.mark.parametrize("size", [0, -1, True, 1.5, "100"])
def test_presign_refuses_nonsense_sizes(storage: Storage, user_id: str, size: Any) -> None:
    with pytest.raises(InvalidRequest):
        storage.presign_upload(user_id, "image/png", size)


def test_presign_refuses_oversize_declarations(storage: Storage, user_id: str) -> None:
    with pytest.raises(PayloadTooLarge):
        storage.presign_upload(user_id, "image/jpeg", 30_000_001)
    with pytest.raises(PayloadTooLarge):
        storage.presign_upload(user_id, "video/mp4", 200_000_001)


def test_browser_post_lands_and_passes_the_reference_check(storage: Storage, user_id: str) -> None:
    upload = storage.presign_upload(user_id, "image/png", len(PNG))
    response = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("../../etc/passwd.png", PNG, "image/png")},
        timeout=10,
    )
    assert response.status_code in (200, 201, 204), response.text

    info = storage.head(upload["key"])
    assert info is not None
    assert (info.size, info.content_type) == (len(PNG), "image/png")
    assert storage.check_reference(upload["key"], user_id) == ReferenceInfo(
        "image", "image/png", len(PNG), etag=info.etag
    )
    assert storage.check_reference(upload["key"], user_id, expected_kind="image").bytes == len(PNG)


@pytest.mark.parametrize(
    ("content_type", "body", "kind"),
    [("image/jpeg", JPEG, "image"), ("image/webp", WEBP, "image"), ("video/mp4", None, "video")],
)
def test_each_type_passes_with_genuine_bytes(
    storage: Storage, s3: Any, user_id: str, content_type: str, body: bytes | None, kind: str
) -> None:
    data = body if body is not None else tiny_mp4()
    key = storage.reference_key(user_id, UPLOAD_TYPES[content_type].ext)
    s3.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType=content_type)
    # the fixture is ffmpeg's: 64x64, 10 frames, 1.0 s (toolchain-notes.md)
    video = VideoInfo(1000, 1000, 64, 64, 10) if kind == "video" else None
    etag = hashlib.md5(data).hexdigest()  # noqa: S324 - S3's ETag of a one-part object
    assert storage.check_reference(key, user_id) == ReferenceInfo(
        kind,  # type: ignore[arg-type]
        content_type,
        len(data),
        video,
        etag,
    )


def test_another_users_key_is_not_found_even_though_it_exists(
    storage: Storage, s3: Any, user_id: str
) -> None:
    key = storage.reference_key(user_id, "png")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=PNG, ContentType="image/png")
    with pytest.raises(NotFound):
        storage.check_reference(key, str(uuid.uuid4()))


def test_missing_upload_is_not_found(storage: Storage, user_id: str) -> None:
    with pytest.raises(NotFound):
        storage.check_reference(storage.reference_key(user_id, "png"), user_id)


def test_oversize_object_put_directly_is_refused(storage: Storage, s3: Any, user_id: str) -> None:
    key = storage.reference_key(user_id, "png")
    body = PNG + bytes(UPLOAD_TYPES["image/png"].max_bytes + 1 - len(PNG))
    s3.put_object(Bucket=storage.bucket, Key=key, Body=body, ContentType="image/png")
    try:
        with pytest.raises(PayloadTooLarge):
            storage.check_reference(key, user_id)
    finally:
        storage.delete(key)


@pytest.mark.parametrize("stored_type", ["image/jpeg", "text/plain", "application/octet-stream"])
def test_wrong_stored_content_type_is_refused(
    storage: Storage, s3: Any, user_id: str, stored_type: str
) -> None:
    key = storage.reference_key(user_id, "png")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=PNG, ContentType=stored_type)
    with pytest.raises(InvalidRequest):
        storage.check_reference(key, user_id)


@pytest.mark.parametrize(
    ("ext", "content_type", "body"),
    [
        ("png", "image/png", b"just some text, honestly not an image"),
        ("png", "image/png", JPEG),
        ("jpg", "image/jpeg", PNG),
        ("webp", "image/webp", b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(40)),
        ("mp4", "video/mp4", b"<html><body>nope</body></html>"),
        ("mov", "video/quicktime", b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"),
        ("png", "image/png", b"\x89PN"),
    ],
)
def test_bytes_that_do_not_match_the_type_are_refused(
    storage: Storage, s3: Any, user_id: str, ext: str, content_type: str, body: bytes
) -> None:
    key = storage.reference_key(user_id, ext)
    s3.put_object(Bucket=storage.bucket, Key=key, Body=body, ContentType=content_type)
    with pytest.raises(InvalidRequest):
        storage.check_reference(key, user_id)


def test_empty_object_is_refused(storage: Storage, s3: Any, user_id: str) -> None:
    key = storage.reference_key(user_id, "png")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=b"", ContentType="image/png")
    with pytest.raises(InvalidRequest):
        storage.check_reference(key, user_id)


def test_wrong_kind_is_refused(storage: Storage, s3: Any, user_id: str) -> None:
    key = storage.reference_key(user_id, "mp4")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=tiny_mp4(), ContentType="video/mp4")
    with pytest.raises(InvalidRequest):
        storage.check_reference(key, user_id, expected_kind="image")


def test_presigned_get_downloads_with_a_safe_filename(
    storage: Storage, s3: Any, user_id: str
) -> None:
    key = storage.export_key(user_id, uuid.uuid4())
    body = b'{"ok": true}'
    s3.put_object(Bucket=storage.bucket, Key=key, Body=body, ContentType="application/json")
    url = storage.presigned_get(key, 60, filename='izgens "export"/../é.json')
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=60" in url
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.content == body
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment; filename=")
    assert '"export"' not in disposition and "/" not in disposition.split("filename*=")[0]
    assert "filename*=UTF-8''" in disposition

    plain = httpx.get(storage.presigned_get(key, 60), timeout=10)
    assert plain.status_code == 200 and "content-disposition" not in plain.headers


def test_presigned_get_refuses_silly_lifetimes(storage: Storage, user_id: str) -> None:
    key = storage.export_key(user_id, uuid.uuid4())
    for seconds in (0, -5, 8 * 24 * 3600):
        with pytest.raises(ValueError):
            storage.presigned_get(key, seconds)


def test_head_and_delete(storage: Storage, s3: Any, user_id: str) -> None:
    key = storage.video_key(user_id, uuid.uuid4())
    assert storage.head(key) is None
    s3.put_object(Bucket=storage.bucket, Key=key, Body=tiny_mp4(), ContentType="video/mp4")
    info = storage.head(key)
    assert info is not None and info.size == 980 and info.content_type == "video/mp4"
    assert info.etag and '"' not in info.etag
    storage.delete(key)
    assert storage.head(key) is None
    storage.delete(key)  # idempotent


# --- presigned PUT (Supabase Storage has no presigned POST) ---------------------------------


@pytest.fixture
def put_storage(local_s3: Any) -> Storage:
    return local_s3.storage(upload_method="put")


def test_presigned_put_pins_type_and_exact_length(put_storage: Storage, user_id: str) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    upload = put_storage.presign_upload(user_id, "image/png", len(PNG))
    assert upload["method"] == "PUT" and upload["fields"] == {}
    assert upload["headers"] == {"Content-Type": "image/png"}
    assert upload["key"].startswith(f"references/{user_id}/") and upload["key"].endswith(".png")
    query = httpx.URL(upload["url"]).params
    assert query["X-Amz-SignedHeaders"] == "content-length;content-type;host"
    assert query["X-Amz-Expires"] == str(UPLOAD_EXPIRY_SECONDS)
    assert before <= upload["expires_at"] <= before + timedelta(seconds=UPLOAD_EXPIRY_SECONDS + 1)

    landed = httpx.put(upload["url"], content=PNG, headers=upload["headers"], timeout=10)
    assert landed.status_code == 200, landed.text
    etag = hashlib.md5(PNG).hexdigest()  # noqa: S324 - S3's ETag of a one-part object
    assert put_storage.check_reference(upload["key"], user_id) == ReferenceInfo(
        "image", "image/png", len(PNG), etag=etag
    )


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (PNG + b"x", "image/png"),  # one byte more than signed
        (PNG[:-1], "image/png"),  # one byte less
        (PNG, "image/jpeg"),  # another type
        (PNG, "text/html"),
    ],
)
def test_a_put_that_differs_from_what_was_signed_is_refused(
    put_storage: Storage, user_id: str, body: bytes, content_type: str
) -> None:
    upload = put_storage.presign_upload(user_id, "image/png", len(PNG))
    refused = httpx.put(upload["url"], content=body, headers={"Content-Type": content_type})
    assert refused.status_code == 403 and b"SignatureDoesNotMatch" in refused.content
    assert put_storage.head(upload["key"]) is None


def test_an_expired_put_link_is_refused(put_storage: Storage, user_id: str) -> None:
    signed = datetime.now(UTC) - timedelta(seconds=UPLOAD_EXPIRY_SECONDS + 5)
    upload = put_storage.presign_upload(user_id, "image/png", len(PNG), now=signed)
    assert upload["expires_at"] < datetime.now(UTC)
    refused = httpx.put(upload["url"], content=PNG, headers=upload["headers"])
    assert refused.status_code == 403 and b"Request has expired" in refused.content
    assert put_storage.head(upload["key"]) is None


def test_a_put_link_writes_only_its_own_key(put_storage: Storage, user_id: str) -> None:
    upload = put_storage.presign_upload(user_id, "image/png", len(PNG))
    other = put_storage.reference_key(str(uuid.uuid4()), "png")
    moved = upload["url"].replace(upload["key"], other)
    refused = httpx.put(moved, content=PNG, headers=upload["headers"])
    assert refused.status_code == 403
    assert put_storage.head(other) is None


def test_a_tampered_download_link_is_refused(put_storage: Storage, s3: Any, user_id: str) -> None:
    key = put_storage.reference_key(user_id, "png")
    s3.put_object(Bucket=put_storage.bucket, Key=key, Body=PNG, ContentType="image/png")
    url = put_storage.presigned_get(key, 60)
    assert httpx.get(url).content == PNG
    assert httpx.get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=600")).status_code == 403
