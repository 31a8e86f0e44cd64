"""The whole flow in presigned-PUT mode (`S3_UPLOAD_METHOD=put`, as on Supabase Storage) over
real HTTP: upload, generate, complete, export, purge, on a bucket that emits no events (as
Supabase Storage emits none), with the bad uploads refused by the signature check."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from izgens.config import reset_settings
from izgens.storage import UPLOAD_EXPIRY_SECONDS, Storage, get_storage, reset_storage
from tests.generation.conftest import GenEnv, User, is_mp4, png

BUCKET = "izgens-put-test"


@pytest.fixture
def put_mode(env: GenEnv, monkeypatch: pytest.MonkeyPatch) -> Iterator[Storage]:
    """The functions upload by PUT into a bucket with no event notifications."""
    storage = env.stack.s3.storage()
    bucket = Storage(
        BUCKET,
        endpoint_url=storage.endpoint_url,
        region=storage.region,
        access_key_id=env.stack.s3.access_key_id,
        secret_access_key=env.stack.s3.secret_access_key,
    )
    bucket.ensure_bucket()
    for name, value in {
        "S3_BUCKET": BUCKET,
        "S3_UPLOAD_METHOD": "put",
        "SUPABASE_SERVICE_KEY": "put-mode-service-key",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    reset_storage()
    yield bucket
    reset_storage()


def presign(env: GenEnv, user: User, data: bytes, content_type: str = "image/png") -> dict:
    response = env.api.post(
        "/generate/uploads",
        json={"filename": "boat.png", "content_type": content_type, "bytes": len(data)},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


def test_put_mode_from_upload_to_purge(env: GenEnv, put_mode: Storage) -> None:
    user = env.user(credits=10_000)
    picture = png()
    upload = presign(env, user, picture)
    assert upload["method"] == "PUT" and upload["fields"] == {}
    assert upload["headers"] == {"Content-Type": "image/png"}
    assert f"/{BUCKET}/references/{user.id}/" in upload["url"]

    # what the signature pins: the exact length and type; nothing lands otherwise
    for body, headers in (
        (picture + b"\0", upload["headers"]),
        (picture[:-1], upload["headers"]),
        (picture, {"Content-Type": "image/jpeg"}),
        (picture, {}),
    ):
        refused = httpx.put(upload["url"], content=body, headers=headers, timeout=10)
        assert refused.status_code == 403, (len(body), headers)
        assert put_mode.head(upload["key"]) is None
    landed = httpx.put(upload["url"], content=picture, headers=upload["headers"], timeout=10)
    assert landed.status_code == 200, landed.text

    # someone else's key: not found, nothing charged
    mallory = env.user(credits=10_000)
    stolen = env.generate(mallory, "a stolen boat", reference_keys=[upload["key"]])
    assert stolen.status_code == 404 and stolen.json()["code"] == "not_found"
    assert env.balance(mallory) == 10_000

    gen = env.accepted(user, "a paper boat drifts on a calm river", reference_keys=[upload["key"]])
    done = env.wait_status(gen["id"], "completed")
    video_key = f"videos/{user.id}/{gen['id']}.mp4"
    assert done["video_key"] == video_key and put_mode.head(video_key) is not None
    # completed without any bucket event: this bucket sends none
    assert video_key not in env.stack.events.keys()
    assert (
        put_mode._call("get_bucket_notification_configuration").get("QueueConfigurations") is None
    )

    made = env.api.post("/privacy_export/privacy/exports", headers=user.headers)
    assert made.status_code == 202, made.text
    from tests.privacy.support import ready_export

    token = user.headers["Authorization"].removeprefix("Bearer ")
    exported = ready_export(env.api, token, made.json()["id"])
    assert exported["status"] == "ready", exported
    doc = json.loads(httpx.get(exported["url"], timeout=10).content)
    [ref] = doc["reference_uploads"]
    assert ref["key"] == upload["key"] and httpx.get(ref["url"], timeout=10).content == picture
    [video] = doc["generations"]
    assert is_mp4(httpx.get(video["video_url"], timeout=10).content)

    assert env.api.post("/privacy_export/privacy/deletion", headers=user.headers).status_code == 202
    env.db.execute(
        "update public.deletion_requests set scheduled_for = now() where user_id = %s", (user.id,)
    )
    from izgens.cleanup import run_jobs

    assert run_jobs(["purge"])["purge"] == {
        "purged": 1,
        "failed": 0,
        "ms": pytest.approx(0, abs=10**6),
    }
    for prefix in ("videos", "references", "exports"):
        listing = put_mode._call("list_objects_v2", Prefix=f"{prefix}/{user.id}/")
        assert listing.get("KeyCount", 0) == 0, prefix
    # deleted through the Auth admin stand-in (the service key is set)
    assert env.db.one("select 1 as x from auth.users where id = %s", (user.id,)) is None


def test_an_expired_put_link_is_refused(env: GenEnv, put_mode: Storage) -> None:
    user = env.user()
    late = get_storage().presign_upload(
        user.id,
        "image/png",
        len(png()),
        now=datetime.now(UTC) - timedelta(seconds=UPLOAD_EXPIRY_SECONDS + 1),
    )
    refused = httpx.put(late["url"], content=png(), headers=late["headers"], timeout=10)
    assert refused.status_code == 403 and b"expired" in refused.content
    assert put_mode.head(late["key"]) is None
    unused = env.generate(user, "a boat", reference_keys=[late["key"]])
    assert unused.status_code == 404 and env.balance(user) == 10_000


def test_an_upload_that_lands_wrong_anyway_is_refused_at_use(
    env: GenEnv, put_mode: Storage
) -> None:
    """Written behind the signature's back (another client with the bucket's keys): the
    check at use still refuses the wrong type and the fake bytes, and charges nothing."""
    user = env.user()
    upload = presign(env, user, png())
    put_mode._call(
        "put_object", Key=upload["key"], Body=b"<html>not a png</html>", ContentType="image/png"
    )
    refused = env.generate(user, "a boat", reference_keys=[upload["key"]])
    assert refused.status_code == 422 and env.balance(user) == 10_000
    other = presign(env, user, png())
    put_mode._call("put_object", Key=other["key"], Body=png(), ContentType="image/jpeg")
    assert env.generate(user, "a boat", reference_keys=[other["key"]]).status_code == 422
