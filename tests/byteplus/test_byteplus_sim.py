"""Our BytePlus client against the Seedance simulator over real HTTP: the task lifecycle, the
real API's shapes and errors, account limits, scenario markers and callbacks."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from izgens.byteplus import BytePlusClient, Task
from izgens.catalog import DEFAULT_MODEL, GenerationSpec, plan
from izgens.errors import ProviderRateLimited, ProviderRejected, ProviderUnavailable
from izgens_local.byteplus_sim import SimServer
from tests.support.waiting import wait_for

from .conftest import API_KEY, Receiver

V20 = "dreamina-seedance-2-0-260128"


def submit(client: BytePlusClient, prompt: str = "a paper boat", **fields: Any) -> str:
    """Create a task the way the generate function will: catalog → client."""
    callback_url = fields.pop("callback_url", None)
    planned = plan(GenerationSpec(prompt=prompt, **fields))
    return client.create_task(
        model=planned.info.id,
        content=planned.content([]),
        callback_url=callback_url,
        **planned.task_parameters(),
    )


def wait_status(client: BytePlusClient, task_id: str, status: str, timeout: float = 5) -> Task:
    task: Task = wait_for(
        lambda: (t := client.get_task(task_id)).status == status and t, timeout=timeout
    )
    return task


def creates_for(sim: SimServer, callback_url: str) -> int:
    return int(httpx.get(sim.url + "/sim/tasks").json()["create_requests"].get(callback_url, 0))


def sim_tasks(sim: SimServer) -> list[dict[str, Any]]:
    return list(httpx.get(sim.url + "/sim/tasks").json()["tasks"])


# --- lifecycle --------------------------------------------------------------------------


def test_task_goes_queued_running_succeeded_with_usage(client: BytePlusClient) -> None:
    task_id = submit(client, resolution="720p", ratio="16:9", duration=5)
    assert task_id.startswith("cgt-")
    first = client.get_task(task_id)
    assert first.status in ("queued", "running")
    assert first.content is None and first.usage is None
    wait_status(client, task_id, "running")
    done = wait_status(client, task_id, "succeeded")
    assert done.status == "succeeded" and done.error is None
    assert done.usage is not None
    assert done.usage.completion_tokens == done.usage.total_tokens == 1248 * 704 * 121 // 1024
    assert (done.model, done.resolution, done.ratio, done.duration) == (
        DEFAULT_MODEL,
        "720p",
        "16:9",
        5,
    )
    assert done.framespersecond == 24 and done.generate_audio is False
    assert isinstance(done.created_at, int) and isinstance(done.updated_at, int)


def _with_videos(raw: httpx.Client, urls: list[str], **fields: Any) -> httpx.Response:
    content: list[dict[str, Any]] = [{"type": "text", "text": "a kite"}]
    content += [
        {"type": "video_url", "video_url": {"url": url}, "role": "reference_video"} for url in urls
    ]
    body = {"model": V20, "content": content, "ratio": "16:9", "duration": 5, **fields}
    return raw.post("/contents/generations/tasks", json=body)


@pytest.mark.parametrize(
    ("videos", "tokens"),
    [
        # 1280x720 is 900 tokens a frame; 5 s is 121 frames, so the output alone is 108,900
        ([], 108_900),
        # 4.5 s of input (108 frames) is under the minimum of twice the output's tokens
        (["4.5.mp4"], 2 * 108_900),
        # 10 s (240 frames) is over it: input and output seconds are billed
        (["10.mp4"], 900 * (121 + 240)),
        (["6.mp4", "5.mp4", "4.mp4"], 900 * (121 + 360)),
        # the headers claim 3 s; the provider plays (and bills) the 12 s of frames
        (["12.mp4?declared=3"], 900 * (121 + 288)),
    ],
)
def test_reference_videos_are_billed_for_their_seconds(
    raw: httpx.Client, client: BytePlusClient, video_host: str, videos: list[str], tokens: int
) -> None:
    answer = _with_videos(raw, [f"{video_host}/{v}" for v in videos])
    assert answer.status_code == 200, answer.text
    done = wait_status(client, answer.json()["id"], "succeeded")
    assert done.usage is not None and done.usage.completion_tokens == tokens


@pytest.mark.parametrize(
    ("videos", "param", "words"),
    [
        (["missing.mp4"], "content[1].video_url", "downloaded"),
        (["junk.mp4"], "content[1].video_url", "decoded"),
        (["1.5.mp4"], "content[1].video_url", "2-15 s"),
        (["16.mp4"], "content[1].video_url", "2-15 s"),
        (["6.mp4", "6.mp4", "6.mp4"], "content", "15 s in total"),
    ],
)
def test_reference_videos_the_provider_cannot_use_are_refused(
    raw: httpx.Client, video_host: str, videos: list[str], param: str, words: str
) -> None:
    answer = _with_videos(raw, [f"{video_host}/{v}" for v in videos])
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == ("InvalidParameter", param)
    assert words in error["message"]


def test_video_url_serves_an_mp4_and_refuses_forgeries(
    client: BytePlusClient, sim: SimServer
) -> None:
    task = wait_status(client, submit(client), "succeeded")
    assert task.video_url is not None and task.video_url.startswith(sim.url + "/sim/videos/")
    video = httpx.get(task.video_url)
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp" and len(video.content) == 980

    forged = task.video_url.replace("sig=", "sig=00")
    assert httpx.get(forged).status_code == 403
    other = task.video_url.replace(task.id, "cgt-someone-else")
    assert httpx.get(other).status_code == 403
    later = task.video_url.replace("expires=", "expires=9")
    assert httpx.get(later).status_code == 403


def test_expired_video_url_is_refused(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(video_url_ttl=-1)
    with BytePlusClient(sim.api_url, API_KEY) as client:
        task = wait_status(client, submit(client), "succeeded")
    assert task.video_url is not None
    answer = httpx.get(task.video_url)
    assert answer.status_code == 403 and b"expired" in answer.content


def test_list_filters_and_pages(client: BytePlusClient) -> None:
    ids = [submit(client, f"clip {i}") for i in range(3)]
    page = client.list_tasks(page_num=1, page_size=2)
    assert page.total == 3
    assert [t.id for t in page.items] == ids[::-1][:2]  # newest first
    assert [t.id for t in client.list_tasks(page_num=2, page_size=2).items] == [ids[0]]
    chosen = client.list_tasks(task_ids=ids[:2])
    assert sorted(t.id for t in chosen.items) == sorted(ids[:2])
    assert client.list_tasks(model=DEFAULT_MODEL).total == 3
    assert client.list_tasks(model=V20).total == 0
    wait_status(client, ids[0], "succeeded")
    assert ids[0] in [t.id for t in client.list_tasks(status="succeeded").items]


def test_delete_cancels_queued_and_removes_finished(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(delay=1.0, queued_share=1.0)
    with BytePlusClient(sim.api_url, API_KEY, backoff=0.01) as client:
        queued = submit(client)
        client.delete_task(queued)
        assert client.get_task(queued).status == "cancelled"
        with pytest.raises(ProviderRejected):
            client.delete_task(queued)  # a cancelled task cannot be deleted again

        finished = submit(client, "[sim:delay=0.1]")
        wait_status(client, finished, "succeeded")
        client.delete_task(finished)
        with pytest.raises(ProviderUnavailable) as caught:
            client.get_task(finished)
        assert caught.value.provider_code == "ResourceNotFound"
        assert finished not in [t.id for t in client.list_tasks().items]


def test_running_task_cannot_be_deleted(client: BytePlusClient) -> None:
    task_id = submit(client, "[sim:delay=1]")
    wait_status(client, task_id, "running")
    with pytest.raises(ProviderRejected):
        client.delete_task(task_id)


# --- what real clients send -------------------------------------------------------------


def test_sdk_style_requests_are_understood(raw: httpx.Client) -> None:
    nulls = dict.fromkeys(
        [
            "safety_identifier",
            "callback_url",
            "return_last_frame",
            "service_tier",
            "execution_expires_after",
            "priority",
            "generate_audio",
            "draft",
            "camera_fixed",
            "watermark",
            "seed",
            "resolution",
            "ratio",
            "duration",
            "frames",
            "output_format",
            "omni_reference_task_type",
        ]
    )
    body = {
        "model": DEFAULT_MODEL,
        "content": [{"type": "text", "text": "[sim:delay=8] a kite"}],  # stays queued 2 s
        **nulls,
        "brand_new_field": {"x": 1},
    }
    created = raw.post("/contents/generations/tasks", json=body)
    assert created.status_code == 200, created.text
    assert created.headers["x-request-id"]
    task_id = created.json()["id"]
    task = raw.get(f"/contents/generations/tasks/{task_id}").json()
    assert (task["resolution"], task["ratio"], task["duration"]) == ("1080p", "16:9", 5)
    assert task["error"] is None and task["service_tier"] == "default"
    assert task["execution_expires_after"] == 172800

    second = raw.post("/contents/generations/tasks", json=body).json()["id"]
    listed = raw.get(
        "/contents/generations/tasks",
        params=[
            ("page_num", "1"),
            ("page_size", "10"),
            ("filter.status", "queued"),
            ("filter.model", DEFAULT_MODEL),
            ("filter.service_tier", "default"),
            ("filter.task_ids", task_id),
            ("filter.task_ids", second),
        ],
    ).json()
    assert listed["total"] == 2 and {t["id"] for t in listed["items"]} == {task_id, second}

    deleted = raw.request("DELETE", f"/contents/generations/tasks/{second}", json={})
    assert deleted.status_code == 200
    assert deleted.headers["content-type"] == "application/json"
    assert deleted.json() == {}
    assert raw.get(f"/contents/generations/tasks/{second}").json()["status"] == "cancelled"


def test_frames_and_last_frame_as_the_api_allows(raw: httpx.Client) -> None:
    body = {
        "model": DEFAULT_MODEL,
        "content": [{"type": "text", "text": "[sim:delay=0.05] a kite"}],
        "frames": 57,
        "resolution": "480p",
        "ratio": "1:1",
        "return_last_frame": True,
    }
    task_id = raw.post("/contents/generations/tasks", json=body).json()["id"]

    def done() -> dict[str, Any] | None:
        task: dict[str, Any] = raw.get(f"/contents/generations/tasks/{task_id}").json()
        return task if task["status"] == "succeeded" else None

    task = wait_for(done)
    assert task["frames"] == 57 and "duration" not in task
    assert task["usage"]["completion_tokens"] == 640 * 640 * 57 // 1024
    frame = httpx.get(task["content"]["last_frame_url"])
    assert frame.status_code == 200 and frame.content.startswith(b"\x89PNG")


# --- errors, as the real API answers them -----------------------------------------------


def test_wrong_key_gets_the_real_401(sim: SimServer) -> None:
    for headers in ({"Authorization": "Bearer nope"}, {}, {"Authorization": API_KEY}):
        answer = httpx.get(sim.api_url + "/contents/generations/tasks", headers=headers)
        assert answer.status_code == 401
        error = answer.json()["error"]
        assert error["code"] == "AuthenticationError" and error["type"] == "Unauthorized"
        assert set(error) == {"code", "message", "param", "type"}

    with BytePlusClient(sim.api_url, "wrong-key-123", retries=0) as client:
        with pytest.raises(ProviderUnavailable) as caught:
            submit(client)
    assert caught.value.provider_code == "AuthenticationError"
    assert not sim_tasks(sim)


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"model": "nope"}, 404, "InvalidEndpointOrModel.NotFound", "model"),
        (
            {"model": "seedance-1-0-lite-t2v-250428"},
            404,
            "InvalidEndpointOrModel.NotFound",
            "model",
        ),
        ({"model": None}, 400, "MissingParameter", "model"),
        ({"content": []}, 400, "MissingParameter", "content"),
        ({"resolution": "4k"}, 400, "InvalidParameter", "resolution"),
        ({"ratio": "2:1"}, 400, "InvalidParameter", "ratio"),
        ({"ratio": "adaptive"}, 400, "InvalidParameter", "ratio"),
        ({"duration": 13}, 400, "InvalidParameter", "duration"),
        ({"duration": -1}, 400, "InvalidParameter", "duration"),
        ({"duration": "5"}, 400, "InvalidParameter", "duration"),
        ({"frames": 30}, 400, "InvalidParameter", "frames"),
        ({"generate_audio": True}, 400, "InvalidParameter", "generate_audio"),
        ({"execution_expires_after": 60}, 400, "InvalidParameter", "execution_expires_after"),
        ({"callback_url": "ftp://x"}, 400, "InvalidParameter", "callback_url"),
        ({"model": V20, "resolution": "1080p", "seed": 5}, 400, "InvalidParameter", "seed"),
        ({"model": V20, "duration": 16}, 400, "InvalidParameter", "duration"),
        ({"model": V20, "camera_fixed": True}, 400, "InvalidParameter", "camera_fixed"),
        (
            {"content": [{"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]},
            400,
            "InvalidParameter",
            "content[0].type",
        ),
        (
            {
                "content": [
                    {
                        "type": "image_url",
                        "image_url": {"url": "https://x/a.png"},
                        "role": "reference_image",
                    }
                ]
            },
            400,
            "InvalidParameter",
            "content[0].role",
        ),
    ],
)
def test_validation_answers_like_the_real_api(
    raw: httpx.Client, body: dict[str, Any], status: int, code: str, param: str
) -> None:
    request = {"model": DEFAULT_MODEL, "content": [{"type": "text", "text": "a kite"}], **body}
    answer = raw.post("/contents/generations/tasks", json=request)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert "Request id: " in error["message"]


def test_client_maps_validation_refusals(client: BytePlusClient) -> None:
    content: list[dict[str, Any]] = [{"type": "text", "text": "x"}]
    with pytest.raises(ProviderRejected) as refused:
        client.create_task(model=DEFAULT_MODEL, content=content, ratio="5:4")
    assert refused.value.provider_code == "InvalidParameter"
    with pytest.raises(ProviderUnavailable) as unavailable:
        client.create_task(model="nope", content=content)
    assert unavailable.value.provider_code == "InvalidEndpointOrModel.NotFound"


def test_two_x_reference_modes(raw: httpx.Client, video_host: str) -> None:
    image: dict[str, Any] = {"type": "image_url", "image_url": {"url": "https://x/a.png"}}
    video: dict[str, Any] = {"type": "video_url", "video_url": {"url": f"{video_host}/5.mp4"}}
    text: dict[str, Any] = {"type": "text", "text": "a kite"}

    def post(content: list[dict[str, Any]]) -> httpx.Response:
        return raw.post("/contents/generations/tasks", json={"model": V20, "content": content})

    refs = [text, {**image, "role": "reference_image"}, {**video, "role": "reference_video"}]
    assert post(refs).status_code == 200
    assert post([text, {**image, "role": "first_frame"}]).status_code == 200
    mixed = post([text, {**image, "role": "first_frame"}, {**video, "role": "reference_video"}])
    assert mixed.status_code == 400
    too_many = post([text] + [{**image, "role": "reference_image"}] * 10)
    assert too_many.status_code == 400


# --- scenario markers -------------------------------------------------------------------


def test_sensitive_prompt_is_rejected_and_no_task_exists(
    client: BytePlusClient, sim: SimServer
) -> None:
    callback = "https://cb.example/reject"
    with pytest.raises(ProviderRejected) as caught:
        submit(client, "[sim:reject=InputTextSensitiveContentDetected] bad", callback_url=callback)
    assert caught.value.provider_code == "InputTextSensitiveContentDetected"
    assert "sensitive" in str(caught.value)
    assert not sim_tasks(sim)
    assert creates_for(sim, callback) == 1


def test_reject_marker_uses_the_codes_real_status(client: BytePlusClient) -> None:
    with pytest.raises(ProviderRateLimited) as caught:
        submit(client, "[sim:reject=QuotaExceeded]")
    assert caught.value.provider_code == "QuotaExceeded"


def test_fail_marker_fails_the_accepted_task(client: BytePlusClient) -> None:
    task_id = submit(client, "[sim:fail=OutputVideoSensitiveContentDetected] x")
    failed = wait_status(client, task_id, "failed")
    assert failed.error is not None
    assert failed.error.code == "OutputVideoSensitiveContentDetected"
    assert failed.error.message
    assert failed.content is None and failed.video_url is None


def test_http_500_is_unavailable_creates_nothing_and_is_not_retried(
    client: BytePlusClient, sim: SimServer
) -> None:
    callback = "https://cb.example/http500"
    with pytest.raises(ProviderUnavailable) as caught:
        submit(client, "[sim:http=500] x", callback_url=callback)
    assert caught.value.provider_code == "InternalServiceError"
    assert creates_for(sim, callback) == 1
    assert not sim_tasks(sim)


def test_http_after_500_creates_the_task_anyway(client: BytePlusClient, sim: SimServer) -> None:
    callback = "https://cb.example/http-after"
    with pytest.raises(ProviderUnavailable):
        submit(client, "[sim:http-after=500] x", callback_url=callback)
    assert creates_for(sim, callback) == 1
    (task,) = sim_tasks(sim)
    assert task["sim"]["callback_url"] == callback
    # the ambiguous case is settled by listing, never by creating again
    assert client.list_tasks(task_ids=[task["id"]]).total == 1


def test_timeout_is_unavailable_and_not_retried(sim: SimServer) -> None:
    callback = "https://cb.example/timeout"
    with BytePlusClient(sim.api_url, API_KEY, timeout=0.3) as client:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="timed out") as caught:
            submit(client, "[sim:timeout] x", callback_url=callback)
        assert time.monotonic() - started < 1.2
        assert isinstance(caught.value.__cause__, httpx.TimeoutException)
        assert creates_for(sim, callback) == 1
        # the provider finishes creating it later: reconciliation finds it
        (task,) = wait_for(lambda: sim_tasks(sim), timeout=5)
        assert task["sim"]["callback_url"] == callback
        assert creates_for(sim, callback) == 1


def test_delay_marker(client: BytePlusClient) -> None:
    task_id = submit(client, "[sim:delay=0.8] slow")
    time.sleep(0.4)
    assert client.get_task(task_id).status in ("queued", "running")
    wait_status(client, task_id, "succeeded", timeout=3)


def test_url_marker_returns_a_foreign_video_url(client: BytePlusClient) -> None:
    task_id = submit(client, "[sim:url=https://evil.example/x.mp4] x")
    assert wait_status(client, task_id, "succeeded").video_url == "https://evil.example/x.mp4"


def test_expire_marker(client: BytePlusClient) -> None:
    task_id = submit(client, "[sim:expire] x")
    assert wait_status(client, task_id, "expired").content is None


# --- account limits ---------------------------------------------------------------------


def test_rpm_limit_answers_429_and_create_is_not_retried(
    start_sim: Callable[..., SimServer],
) -> None:
    sim = start_sim(rpm=2)
    callback = "https://cb.example/rpm"
    with BytePlusClient(sim.api_url, API_KEY) as client:
        submit(client, callback_url=callback)
        submit(client, callback_url=callback)
        with pytest.raises(ProviderRateLimited) as caught:
            submit(client, callback_url=callback)
        assert caught.value.provider_code == "ModelAccountRpmRateLimitExceeded"
        submit(client, model=V20)  # the limit is per model
    assert creates_for(sim, callback) == 3


def test_rpm_limit_of_an_endpoint_id(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(rpm=1, endpoints={"ep-2026-abc": DEFAULT_MODEL})
    with BytePlusClient(sim.api_url, API_KEY) as client:
        content = [{"type": "text", "text": "x"}]
        task_id = client.create_task(model="ep-2026-abc", content=content)
        assert client.get_task(task_id).model == "ep-2026-abc"
        with pytest.raises(ProviderRateLimited) as caught:
            client.create_task(model="ep-2026-abc", content=content)
    assert caught.value.provider_code == "RateLimitExceeded.EndpointRPMExceeded"


def test_queued_cap_answers_429_quota_exceeded(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(max_queued=2, delay=10, queued_share=1.0)
    with BytePlusClient(sim.api_url, API_KEY) as client:
        submit(client)
        submit(client)
        with pytest.raises(ProviderRateLimited) as caught:
            submit(client)
    assert caught.value.provider_code == "QuotaExceeded"
    assert len(sim_tasks(sim)) == 2


def test_queued_cap_holds_under_concurrent_creates(start_sim: Callable[..., SimServer]) -> None:
    sim = start_sim(max_queued=3, delay=10, queued_share=1.0)

    def attempt(i: int) -> str:
        with BytePlusClient(sim.api_url, API_KEY) as client:
            try:
                submit(client, f"race {i}")
            except ProviderRateLimited as exc:
                return exc.provider_code or ""
            return "created"

    with ThreadPoolExecutor(12) as pool:
        outcomes = list(pool.map(attempt, range(12)))
    assert outcomes.count("created") == 3
    assert outcomes.count("QuotaExceeded") == 9
    assert len(sim_tasks(sim)) == 3


def test_concurrency_limit_keeps_the_second_task_queued(
    start_sim: Callable[..., SimServer],
) -> None:
    sim = start_sim(max_running=1, delay=0.5, queued_share=0.0)
    with BytePlusClient(sim.api_url, API_KEY) as client:
        first, second = submit(client), submit(client)
        wait_status(client, first, "running")
        while True:
            # read the second first: if the first is still running afterwards, it was then too
            second_status = client.get_task(second).status
            if client.get_task(first).status != "running":
                break
            assert second_status == "queued"
            time.sleep(0.03)
        assert client.get_task(first).status == "succeeded"
        wait_status(client, second, "running")
        wait_status(client, second, "succeeded")
        # another model has its own slots
        other = submit(client, model=V20)
        wait_status(client, other, "running")


# --- callbacks --------------------------------------------------------------------------


def test_callbacks_on_each_status_change(client: BytePlusClient, receiver: Receiver) -> None:
    task_id = submit(client, callback_url=receiver.url)
    done = wait_status(client, task_id, "succeeded")
    wait_for(lambda: receiver.bodies("succeeded"))
    assert [b["status"] for b in receiver.bodies()] == ["running", "succeeded"]
    running, succeeded = receiver.bodies()
    assert running["id"] == task_id and "content" not in running
    assert Task.model_validate(succeeded) == done  # the same JSON as GET


def test_callbacks_are_retried_for_terminal_states_only(
    client: BytePlusClient, receiver: Receiver, sim: SimServer
) -> None:
    receiver.script = [500] * 10
    task_id = submit(client, callback_url=receiver.url)
    wait_for(lambda: len(receiver.bodies("succeeded")) == 4)
    time.sleep(0.2)
    assert len(receiver.bodies("running")) == 1  # no retry for running
    assert len(receiver.bodies("succeeded")) == 4  # first try + 3 retries
    log = httpx.get(sim.url + "/sim/callbacks").json()["deliveries"]
    attempts = [d["attempt"] for d in log if d["task_id"] == task_id and d["status"] == "succeeded"]
    assert attempts == [1, 2, 3, 4]
    assert all(d["ok"] is False and d["outcome"] == 500 for d in log)


def test_failed_callback_is_retried_until_accepted(
    client: BytePlusClient, receiver: Receiver
) -> None:
    task_id = submit(client, "[sim:fail=InternalServiceError] x", callback_url=receiver.url)
    wait_for(lambda: receiver.bodies("running"))
    receiver.script = [500, 503]
    wait_for(lambda: len(receiver.bodies("failed")) == 3)
    time.sleep(0.2)
    failed = receiver.bodies("failed")
    assert len(failed) == 3
    assert failed[-1]["id"] == task_id and failed[-1]["error"]["code"] == "InternalServiceError"


# --- inspection -------------------------------------------------------------------------


def test_sim_inspection_and_reset(client: BytePlusClient, sim: SimServer) -> None:
    callback = "https://cb.example/inspect"
    submit(client, "one", callback_url=callback)
    submit(client, "two", callback_url=callback)
    seen = httpx.get(sim.url + "/sim/tasks").json()
    assert seen["create_requests"] == {callback: 2} and seen["total_create_requests"] == 2
    assert [t["sim"]["create_count"] for t in seen["tasks"]] == [2, 2]
    assert [t["sim"]["prompt"] for t in seen["tasks"]] == ["one", "two"]
    assert httpx.post(sim.url + "/sim/reset").json() == {}
    assert httpx.get(sim.url + "/sim/tasks").json()["tasks"] == []
