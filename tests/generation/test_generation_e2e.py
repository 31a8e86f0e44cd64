"""A generation end to end over real HTTP: a reference uploaded with the presigned POST,
generate, the provider's callback, the video copied into the bucket, the S3 event, the MP4
downloaded, history, Recreate, delete (the object goes)."""

from __future__ import annotations

import uuid

import httpx

from tests.generation.conftest import GenEnv, is_mp4, png


def upload_reference(env: GenEnv, headers: dict[str, str], data: bytes, content_type: str) -> str:
    response = env.api.post(
        "/generate/uploads",
        json={
            "filename": "../../etc/boat picture.png",
            "content_type": content_type,
            "bytes": len(data),
        },
        headers=headers,
    )
    assert response.status_code == 201, response.text
    upload = response.json()
    posted = httpx.post(
        upload["url"],
        data=upload["fields"],
        files={"file": ("boat.png", data, content_type)},
        timeout=10,
    )
    assert posted.status_code in (200, 204), posted.text
    return str(upload["key"])


def test_a_generation_from_upload_to_delete(env: GenEnv) -> None:
    user = env.user(credits=10_000)
    key = upload_reference(env, user.headers, png(), "image/png")
    assert key.startswith(f"references/{user.id}/") and "boat" not in key

    quote = env.api.get("/generate/quote", headers=user.headers).json()
    gen = env.accepted(user, "a paper boat drifts on a calm river", reference_keys=[key])
    assert gen["status"] == "submitted" and gen["reference_keys"] == [key]
    assert gen["cost"] == quote["credits"]
    assert env.balance(user) == 10_000 - gen["cost"]
    task = env.sim_task(gen["id"])
    assert task["sim"]["callback_url"].startswith(f"{env.stack.dev.base}/status/callbacks/byteplus")

    done = env.wait_status(gen["id"], "completed")
    video_key = f"videos/{user.id}/{gen['id']}.mp4"
    assert done["video_key"] == video_key and done["bytes"] > 0
    assert done["content_type"] == "video/mp4"
    # the bucket's ObjectCreated event reached video_stored (through SQS), harmlessly late
    events = env.stack.events
    from tests.support.waiting import wait_for

    wait_for(lambda: video_key in events.keys(), what="the S3 event for the video")

    shown = env.status(user, gen["id"])
    assert shown.status_code == 200
    body = shown.json()
    assert body["status"] == "completed" and body["video_url"] and body["completed_at"]
    video = httpx.get(body["video_url"], timeout=10)
    assert video.status_code == 200 and is_mp4(video.content)

    history = env.api.get("/status/generations", headers=user.headers).json()
    assert [item["id"] for item in history["items"]] == [gen["id"]]

    again = env.api.post(
        f"/generate/generations/{gen['id']}/recreate",
        json={},
        headers={**user.headers, "Idempotency-Key": uuid.uuid4().hex},
    )
    assert again.status_code == 202, again.text
    copy = again.json()
    assert copy["id"] != gen["id"] and copy["recreated_from"] == gen["id"]
    assert copy["prompt"] == gen["prompt"] and copy["reference_keys"] == [key]
    assert copy["cost"] == gen["cost"]
    assert env.ledger(copy["id"]) == [("generation", -copy["cost"])]
    env.wait_status(copy["id"], "completed")

    deleted = env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers)
    assert deleted.status_code == 204
    assert not env.object_exists(video_key)
    assert httpx.get(body["video_url"], timeout=10).status_code in (403, 404)
    assert env.status(user, gen["id"]).status_code == 404
    listed = env.api.get("/status/generations", headers=user.headers).json()["items"]
    assert [item["id"] for item in listed] == [copy["id"]]
    # charged once per generation, nothing refunded
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.balance(user) == 10_000 - 2 * gen["cost"]
