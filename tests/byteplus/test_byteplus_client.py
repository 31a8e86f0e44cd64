"""Narrow unit tests of BytePlusClient's error mapping and retry rules (httpx.MockTransport).

Everything the simulator can show is tested over real HTTP in test_byteplus_sim.py; here are
only the cases a real server cannot provoke on demand (exact retry counts, headers, dates).
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from izgens.byteplus import (
    BytePlusClient,
    Task,
    TaskStatus,
)
from izgens.errors import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

from .conftest import API_KEY

BASE = "https://ark.test/api/v3"
TASK = {"id": "cgt-1", "model": "m", "status": "running", "created_at": 1, "updated_at": 2}


class Recorder:
    """A MockTransport that answers from a list and keeps every request."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, **kw: Any) -> BytePlusClient:
        return BytePlusClient(
            BASE, API_KEY, transport=httpx.MockTransport(self), backoff=0.001, **kw
        )


def error(status: int, code: str, message: str = "no", **headers: str) -> httpx.Response:
    body = {"error": {"code": code, "message": message, "param": "", "type": "X"}}
    return httpx.Response(status, json=body, headers=headers)


def create(client: BytePlusClient) -> str:
    return client.create_task(model="m", content=[{"type": "text", "text": "hi"}])


# --- error mapping ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "InputTextSensitiveContentDetected",
        "InputImageSensitiveContentDetected.PrivacyInformation",
        "SensitiveContentDetected.Violence",
        "InvalidParameter",
        "InvalidParameter.Resolution",
        "MissingParameter",
    ],
)
def test_400_is_a_definite_refusal_with_the_provider_code(code: str) -> None:
    rec = Recorder(error(400, code, "refused"))
    with pytest.raises(ProviderRejected) as caught:
        create(rec.client())
    assert caught.value.provider_code == code
    assert code in str(caught.value)
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "AuthenticationError"),
        (403, "AccountOverdueError"),
        (403, "AccessDenied"),
        (404, "ModelNotOpen"),
        (404, "InvalidEndpointOrModel.NotFound"),
    ],
)
def test_configuration_problems_are_unavailable_and_not_retried(status: int, code: str) -> None:
    rec = Recorder(error(status, code))
    with pytest.raises(ProviderUnavailable) as caught:
        rec.client().get_task("cgt-1")
    assert caught.value.provider_code == code
    assert len(rec.requests) == 1


@pytest.mark.parametrize(
    "code", ["QuotaExceeded", "ModelAccountRpmRateLimitExceeded", "ServerOverloaded"]
)
def test_429_is_rate_limited_with_retry_after(code: str) -> None:
    rec = Recorder(error(429, code, **{"Retry-After": "3"}))
    with pytest.raises(ProviderRateLimited) as caught:
        create(rec.client())
    assert caught.value.provider_code == code
    assert caught.value.retry_after == 3.0
    assert len(rec.requests) == 1


def test_retry_after_as_an_http_date_and_absent() -> None:
    started = time.monotonic()
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    with pytest.raises(ProviderRateLimited) as caught:
        create(Recorder(error(429, "QuotaExceeded", **{"Retry-After": when})).client())
    # the date has whole seconds; however slow the machine, what passed since is subtracted
    elapsed = time.monotonic() - started
    assert caught.value.retry_after is not None
    assert 30 - elapsed - 1 <= caught.value.retry_after <= 30
    with pytest.raises(ProviderRateLimited) as caught:
        create(Recorder(error(429, "QuotaExceeded")).client())
    assert caught.value.retry_after is None


@pytest.mark.parametrize(
    "answer",
    [
        error(500, "InternalServiceError"),
        error(503, "ServiceUnavailable"),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(200, text="not json"),
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("peer closed"),
    ],
)
def test_server_and_transport_failures_on_create_are_unavailable_and_sent_once(
    answer: httpx.Response | Exception,
) -> None:
    rec = Recorder(answer)
    with pytest.raises(ProviderUnavailable) as caught:
        create(rec.client())
    assert len(rec.requests) == 1  # a retried create can bill twice
    if isinstance(answer, Exception):
        assert caught.value.__cause__ is answer


def test_delete_is_never_retried() -> None:
    rec = Recorder(error(500, "InternalServiceError"))
    with pytest.raises(ProviderUnavailable):
        rec.client().delete_task("cgt-1")
    assert len(rec.requests) == 1


def test_create_without_an_id_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable, match="no id"):
        create(Recorder(httpx.Response(200, json={})).client())


def test_unexpected_task_shape_is_unavailable() -> None:
    with pytest.raises(ProviderUnavailable, match="unexpected shape"):
        Recorder(httpx.Response(200, json={"status": "queued"})).client().get_task("cgt-1")


# --- retries ----------------------------------------------------------------------------


def test_get_is_retried_on_500_then_succeeds() -> None:
    rec = Recorder(
        error(500, "InternalServiceError"),
        httpx.ReadTimeout("slow"),
        httpx.Response(200, json=TASK),
    )
    task = rec.client().get_task("cgt-1")
    assert task.status == "running"
    assert len(rec.requests) == 3


def test_get_gives_up_after_two_retries() -> None:
    rec = Recorder(error(500, "InternalServiceError"))
    with pytest.raises(ProviderUnavailable) as caught:
        rec.client().get_task("cgt-1")
    assert len(rec.requests) == 3
    assert caught.value.provider_code == "InternalServiceError"


def test_list_is_retried_on_429_with_a_short_retry_after() -> None:
    rec = Recorder(
        error(429, "ServerOverloaded", **{"Retry-After": "0"}),
        httpx.Response(200, json={"items": [TASK], "total": 1}),
    )
    page = rec.client().list_tasks(page_num=1, page_size=10)
    assert page.total == 1 and page.items[0].id == "cgt-1"
    assert len(rec.requests) == 2


def test_read_is_not_retried_when_the_provider_asks_for_a_long_wait() -> None:
    rec = Recorder(error(429, "QuotaExceeded", **{"Retry-After": "60"}))
    with pytest.raises(ProviderRateLimited) as caught:
        rec.client().get_task("cgt-1")
    assert caught.value.retry_after == 60.0
    assert len(rec.requests) == 1


def test_retries_can_be_turned_off() -> None:
    rec = Recorder(error(500, "InternalServiceError"))
    with pytest.raises(ProviderUnavailable):
        rec.client(retries=0).get_task("cgt-1")
    assert len(rec.requests) == 1


# --- what goes on the wire --------------------------------------------------------------


def test_create_request_shape() -> None:
    rec = Recorder(httpx.Response(200, json={"id": "cgt-9"}))
    task_id = rec.client().create_task(
        model="seedance-1-0-pro-fast-251015",
        content=[{"type": "text", "text": "hi"}],
        callback_url="https://cb.example/x?token=t",
        resolution="720p",
        duration=5,
        generate_audio=False,
    )
    assert task_id == "cgt-9"
    (request,) = rec.requests
    assert request.method == "POST"
    assert str(request.url) == f"{BASE}/contents/generations/tasks"
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["content-type"] == "application/json"
    assert re.fullmatch(r"\d{14}[A-Za-z0-9]{20}", request.headers["x-client-request-id"])
    assert json.loads(request.content) == {
        "model": "seedance-1-0-pro-fast-251015",
        "content": [{"type": "text", "text": "hi"}],
        "callback_url": "https://cb.example/x?token=t",
        "resolution": "720p",
        "duration": 5,
        "generate_audio": False,
    }


def test_invalid_create_is_refused_before_any_request() -> None:
    rec = Recorder(httpx.Response(200, json={"id": "cgt-9"}))
    with pytest.raises(ValueError):
        rec.client().create_task(model="m", content=[{"type": "text"}], seed=2**31)
    with pytest.raises(ValueError):
        rec.client().create_task(model="m", content=[])
    assert rec.requests == []


def test_list_uses_dotted_filters_and_repeats_task_ids() -> None:
    rec = Recorder(httpx.Response(200, json={"items": [], "total": 0}))
    rec.client().list_tasks(
        page_num=2, page_size=50, status="queued", task_ids=["a", "b"], model="m"
    )
    params = rec.requests[0].url.params
    assert params["page_num"] == "2" and params["page_size"] == "50"
    assert params["filter.status"] == "queued" and params["filter.model"] == "m"
    assert params.get_list("filter.task_ids") == ["a", "b"]


def test_task_ids_are_escaped_in_paths() -> None:
    rec = Recorder(httpx.Response(200, json=TASK))
    rec.client().get_task("../x?y")
    assert rec.requests[0].url.raw_path.endswith(b"/tasks/..%2Fx%3Fy")
    with pytest.raises(ValueError):
        rec.client().delete_task(" ")


def test_delete_accepts_an_empty_or_json_answer() -> None:
    for answer in (httpx.Response(200, json={}), httpx.Response(204)):
        rec = Recorder(answer)
        rec.client().delete_task("cgt-1")
        assert rec.requests[0].method == "DELETE"


# --- the key stays secret ---------------------------------------------------------------


def test_api_key_never_appears_in_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    def echo_key(request: httpx.Request) -> httpx.Response:
        leaked = request.headers["authorization"]  # a hostile or buggy server echoes it
        return error(500, "InternalServiceError", f"bad header {leaked}")

    client = BytePlusClient(BASE, API_KEY, transport=httpx.MockTransport(echo_key), backoff=0)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ProviderUnavailable) as caught:
        client.get_task("cgt-1")
    texts = [str(caught.value), repr(caught.value), caught.value.detail, repr(client)]
    texts += [r.getMessage() for r in caplog.records]
    assert caplog.records, "the retries should have been logged"
    for text in texts:
        assert API_KEY not in text
    assert "***" in str(caught.value)

    broken = BytePlusClient(
        BASE, API_KEY, transport=httpx.MockTransport(Recorder(httpx.ConnectError(API_KEY)))
    )
    with pytest.raises(ProviderUnavailable) as caught:
        broken.create_task(model="m", content=[{"type": "text", "text": "x"}])
    assert API_KEY not in str(caught.value)


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError):
        BytePlusClient(BASE, "")


# --- types ------------------------------------------------------------------------------


def test_task_tolerates_unknown_fields_and_missing_content() -> None:
    task = Task.model_validate({**TASK, "brand_new": {"x": 1}, "tools": []})
    assert task.content is None and task.usage is None and task.video_url is None
    assert task.model_extra == {"brand_new": {"x": 1}, "tools": []}
    done = Task.model_validate(
        {
            **TASK,
            "status": "succeeded",
            "content": {"video_url": "https://v/x.mp4", "extra": 1},
            "usage": {"completion_tokens": 5, "total_tokens": 5},
            "error": None,
        }
    )
    assert done.status == "succeeded" and done.video_url == "https://v/x.mp4"
    assert done.usage is not None and done.usage.completion_tokens == 5
    failed = Task.model_validate(
        {**TASK, "status": "failed", "error": {"code": "C", "message": "m"}}
    )
    assert failed.error is not None and failed.error.code == "C"


def test_terminal_statuses() -> None:
    assert [s.value for s in TaskStatus] == [
        "queued",
        "running",
        "succeeded",
        "failed",
        "cancelled",
        "expired",
    ]


def test_importing_the_client_stays_light() -> None:
    code = (
        "import sys, izgens.byteplus; "
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = set(out.strip().split(","))
    heavy = {"fastapi", "starlette", "boto3", "botocore", "psycopg", "uvicorn", "jwt"}
    assert not loaded & heavy
    assert "pydantic_settings" not in loaded  # no settings read at import
