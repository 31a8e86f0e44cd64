"""What a caller must never get: another user's generations or uploads (404 on every
route), a reference that is not what the policy promised, a callback acted on without a
valid token, a video fetched from a host that is not the provider's."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from izgens.generations import callback_token
from tests.generation.conftest import SIGNING_KEY, GenEnv, png
from tests.generation.test_generation_e2e import upload_reference
from tests.support.mp4 import tiny_mp4
from tests.support.problems import assert_problem
from tests.support.servers import QuietHandler, StubServer


def test_another_users_generation_is_not_found_on_every_route(env: GenEnv) -> None:
    owner, other = env.user(), env.user()
    gen = env.accepted(owner)
    env.wait_status(gen["id"], "completed")
    gid = gen["id"]
    before = env.counts()
    assert_problem(env.status(other, gid), 404, "not_found")
    assert_problem(env.api.delete(f"/status/generations/{gid}", headers=other.headers), 404)
    recreate = env.api.post(
        f"/generate/generations/{gid}/recreate",
        json={},
        headers={**other.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert_problem(recreate, 404, "not_found")
    assert env.api.get("/status/generations", headers=other.headers).json()["items"] == []
    # a missing id answers exactly the same
    assert_problem(env.status(other, str(uuid.uuid4())), 404, "not_found")
    assert env.counts() == before
    assert env.row(gid)["deleted_at"] is None and env.object_exists(env.row(gid)["video_key"])
    assert env.status(owner, gid).json()["status"] == "completed"
    assert env.balance(other) == 10_000


def test_another_users_reference_key_is_not_found(env: GenEnv) -> None:
    owner, other = env.user(), env.user()
    key = upload_reference(env, owner.headers, png(), "image/png")
    forged = [
        key,  # the owner's real upload
        key.replace(str(owner.id), str(other.id)),  # the same name under the caller's prefix
        f"references/{other.id}/../{owner.id}/{key.rsplit('/', 1)[1]}",
        f"references/{other.id}/{uuid.uuid4().hex}.png",  # never uploaded
    ]
    before = env.counts()
    for candidate in forged:
        response = env.generate(other, reference_keys=[candidate])
        assert_problem(response, 404, "not_found")
        assert key not in response.text
    assert env.counts() == before and env.balance(other) == 10_000
    assert env.sim_tasks() == []


def _policy(fields: dict[str, str]) -> dict[str, Any]:
    return json.loads(base64.b64decode(fields["policy"]))


@pytest.mark.parametrize(
    ("content_type", "size", "limit"),
    [
        ("image/png", 123_456, 30_000_000),
        ("image/jpeg", 1, 30_000_000),
        ("video/mp4", 5_000_000, 200_000_000),
    ],
)
def test_the_presigned_post_policy_pins_key_type_and_size(
    env: GenEnv, content_type: str, size: int, limit: int
) -> None:
    user = env.user()
    response = env.api.post(
        "/generate/uploads",
        json={"filename": "<script>.png", "content_type": content_type, "bytes": size},
        headers=user.headers,
    )
    assert response.status_code == 201, response.text
    upload = response.json()
    policy = _policy(upload["fields"])
    conditions = policy["conditions"]
    assert {"bucket": env.storage.bucket} in conditions
    assert {"key": upload["key"]} in conditions
    assert {"Content-Type": content_type} in conditions
    assert ["content-length-range", 1, limit] in conditions
    assert upload["fields"]["Content-Type"] == content_type
    expires = datetime.strptime(policy["expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert 0 < (expires - datetime.now(UTC)).total_seconds() <= 15 * 60 + 5
    assert upload["key"].startswith(f"references/{user.id}/") and "script" not in upload["key"]
    row = env.db.one("select * from public.reference_uploads where key = %s", (upload["key"],))
    assert row is not None and row["user_id"] == user.id and row["bytes"] == size


UPLOADS_REFUSED: list[tuple[dict[str, Any], int]] = [
    ({"filename": "a.gif", "content_type": "image/gif", "bytes": 10}, 422),
    ({"filename": "a.html", "content_type": "text/html", "bytes": 10}, 422),
    ({"filename": "a.png", "content_type": "image/png", "bytes": 30_000_001}, 413),
    ({"filename": "a.png", "content_type": "image/png", "bytes": 0}, 422),
    ({"filename": "a.png", "content_type": "image/png", "bytes": "10"}, 422),
    ({"filename": "a.png", "content_type": "image/png", "bytes": 10, "acl": "public-read"}, 422),
]


def test_an_upload_outside_the_limits_is_refused_and_writes_nothing(env: GenEnv) -> None:
    user = env.user()
    before = env.counts()
    for body, status in UPLOADS_REFUSED:
        response = env.api.post("/generate/uploads", json=body, headers=user.headers)
        assert_problem(response, status)
    assert env.db.all("select * from public.reference_uploads") == []
    assert env.counts() == before


BIG = 30_000_001


POLICY_BREAKERS: list[tuple[str, str, str, bytes, int]] = [
    ("empty", "png", "image/png", b"", 422),  # under the policy's size range
    ("too big", "png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(BIG - 8), 413),  # over it
    ("type the policy refuses", "png", "image/gif", png(), 422),
    ("type that is not the key's", "jpg", "image/png", png(), 422),
    ("not an image", "png", "image/png", b"<html><script>alert(1)</script></html>", 422),
    ("an image dressed as a video", "mp4", "video/mp4", png(), 422),
    ("a video dressed as an image", "png", "image/png", tiny_mp4(), 422),
]


def test_an_object_that_breaks_the_policy_is_refused_when_a_generation_names_it(
    env: GenEnv,
) -> None:
    """moto enforces no POST policy, so these are put straight into the bucket."""
    user = env.user()
    before = env.counts()
    for why, ext, content_type, body, status in POLICY_BREAKERS:
        key = f"references/{user.id}/{uuid.uuid4().hex}.{ext}"
        env.storage.client.put_object(
            Bucket=env.storage.bucket, Key=key, Body=body, ContentType=content_type
        )
        fields = {"model": "dreamina-seedance-2-0-fast-260128"} if ext == "mp4" else {}
        response = env.generate(user, reference_keys=[key], **fields)
        assert response.status_code == status, (why, response.text)
        assert_problem(response, status)
        assert env.counts() == before, why
    assert env.balance(user) == 10_000 and env.sim_tasks() == []


def _callback(env: GenEnv, token: str | None, body: dict[str, Any]) -> httpx.Response:
    params = {"token": token} if token is not None else {}
    return env.api.post("/status/callbacks/byteplus", params=params, json=body)


def test_a_callback_with_a_bad_token_is_refused_and_changes_nothing(env: GenEnv) -> None:
    user = env.user()
    gen = env.accepted(user, "a slow one [sim:delay=30]")
    task = env.sim_task(gen["id"])
    env.drop_callback(task["id"])
    gid = uuid.UUID(gen["id"])
    good = callback_token(gid, SIGNING_KEY)
    forged: dict[str, str | None] = {
        "garbage": "not-a-token",
        "wrong mac": good[:-4] + ("0000" if not good.endswith("0000") else "1111"),
        "signed with another key": callback_token(gid, "some-other-signing-key-0000000000000"),
        "truncated": good[:-1],
        "missing": None,
        "empty": "",
        "uppercase": good.upper(),
        "another generation's": callback_token(uuid.uuid4(), SIGNING_KEY),
    }
    before = env.row(gen["id"])
    for why, token in forged.items():
        response = _callback(env, token, {"id": task["id"], "status": "succeeded"})
        assert 400 <= response.status_code < 500, (why, response.text)
        assert_problem(response, response.status_code)
        assert env.row(gen["id"]) == before, why
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    # the right token works (and the body's claims still count for nothing)
    assert _callback(env, good, {"id": task["id"], "status": "succeeded"}).status_code == 200
    assert env.row(gen["id"])["status"] == "submitted"


def _recording_host(hits: list[str]) -> StubServer:
    """A loopback server on a port that is not on the allowlist; records every request."""

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            hits.append(self.path)
            self.reply(200, tiny_mp4(), "video/mp4")

    return StubServer(Handler)


@pytest.mark.parametrize("where", ["evil.example", "unlisted loopback port"])
def test_a_video_on_a_host_off_the_allowlist_is_refused_never_fetched_and_refunded(
    env: GenEnv, where: str
) -> None:
    hits: list[str] = []
    with _recording_host(hits) as host:
        url = "https://evil.example/x.mp4" if where == "evil.example" else f"{host.base}/x.mp4"
        user = env.user()
        gen = env.accepted(user, f"a harmless prompt [sim:url={url}]")
        failed = env.wait_status(gen["id"], "failed")
        assert failed["error_code"] == "video_refused"
        assert "not an allowed video host" in failed["error_message"]
        assert hits == []
        assert not env.object_exists(f"videos/{user.id}/{gen['id']}.mp4")
        assert env.ledger(gen["id"]) == [
            ("generation", -gen["cost"]),
            ("generation_refund", gen["cost"]),
        ]
        assert env.balance(user) == 10_000


def test_an_adult_gate_and_the_balance_are_checked_before_anything_is_written(env: GenEnv) -> None:
    minor = env.user(adult=False)
    poor = env.user(credits=1)
    before = env.counts()
    assert_problem(env.generate(minor), 403, "age_not_confirmed")
    body = assert_problem(env.generate(poor), 402, "insufficient_credits")
    assert body["balance"] == 1 and body["required"] > 1
    assert env.counts()["generations"] == before["generations"]
    assert env.counts()["ledger"] == before["ledger"]
    assert env.sim_tasks() == []
