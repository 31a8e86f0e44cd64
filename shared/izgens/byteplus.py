"""A thin client for BytePlus ModelArk's video-generation tasks (Seedance), and its wire types.

Every failure leaves here as one of the project's errors, split by what the caller must do
(`reference/byteplus-seedance.md` §5):

    ProviderRejected     400 and other 4xx refusals: definite, no task exists; refund now
    ProviderUnavailable  5xx, timeouts, connection errors, unreadable answers, and 401/403/404
                         (our key, account or model id is wrong: the operator must fix it,
                         the user's task may or may not exist); reconcile later
    ProviderRateLimited  429 of any code (RPM, queued-task quota, overload); `retry_after`
                         comes from the Retry-After header when present

Reads (`get_task`, `list_tasks`) are retried twice with jittered exponential backoff on
Unavailable/RateLimited. `create_task` and `delete_task` are never retried: a retried create
after an ambiguous failure can bill twice. The API key is sent only in the Authorization
header and is scrubbed from every message this module produces.

Only httpx and pydantic are imported, so functions that never call BytePlus stay cheap.
"""

from __future__ import annotations

import logging
import secrets
import string
from collections.abc import Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from izgens.errors import (
    ProviderError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from izgens.retry import NO_RETRY, Retry, retry_after_seconds

__all__ = [
    "BytePlusClient",
    "CreateTaskRequest",
    "Task",
    "TaskContent",
    "TaskError",
    "TaskList",
    "TaskStatus",
    "TaskUsage",
]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)

_TASKS_PATH = "/contents/generations/tasks"
_USER_AGENT = "izgens/0.1 (+httpx)"
_MAX_BACKOFF = 8.0


class TaskStatus(StrEnum):
    """Provider task states (§3.1); a task only leaves `queued` by running or being cancelled."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class _Wire(BaseModel):
    """Provider answers: tolerate and keep fields we do not know yet."""

    model_config = ConfigDict(extra="allow")


class TaskError(_Wire):
    code: str = ""
    message: str = ""


class TaskContent(_Wire):
    video_url: str | None = None
    last_frame_url: str | None = None


class TaskUsage(_Wire):
    completion_tokens: int = 0
    total_tokens: int = 0


class Task(_Wire):
    """The task object of GET, list items and callbacks (§3.1); absent fields are None."""

    id: str
    model: str = ""
    status: str
    error: TaskError | None = None
    content: TaskContent | None = None
    usage: TaskUsage | None = None
    created_at: int | None = None
    updated_at: int | None = None
    seed: int | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    frames: int | None = None
    framespersecond: int | None = None
    generate_audio: bool | None = None
    draft: bool | None = None
    service_tier: str | None = None
    execution_expires_after: int | None = None
    priority: int | None = None
    safety_identifier: str | None = None
    revised_prompt: str | None = None

    @property
    def video_url(self) -> str | None:
        return self.content.video_url if self.content else None


class TaskList(_Wire):
    items: list[Task] = []
    total: int = 0


class CreateTaskRequest(BaseModel):
    """The create body (§2.2); unset fields are left out so the provider applies its defaults."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1)
    content: list[dict[str, Any]] = Field(min_length=1)
    callback_url: str | None = None
    return_last_frame: bool | None = None
    service_tier: str | None = None
    execution_expires_after: int | None = Field(None, ge=3600, le=259200)
    priority: int | None = Field(None, ge=0, le=9)
    generate_audio: bool | None = None
    draft: bool | None = None
    camera_fixed: bool | None = None
    watermark: bool | None = None
    seed: int | None = Field(None, ge=-1, le=2_147_483_647)
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    frames: int | None = None
    safety_identifier: str | None = Field(None, max_length=64)


def _client_request_id() -> str:
    """Same shape as the official SDK's: a UTC timestamp and 20 random alphanumerics."""
    alphabet = string.ascii_letters + string.digits
    suffix = "".join(secrets.choice(alphabet) for _ in range(20))
    return datetime.now(UTC).strftime("%Y%m%d%H%M%S") + suffix


class BytePlusClient:
    """Create, read, list and cancel Seedance tasks; errors are `ProviderError`s only.

    One instance holds one connection pool; keep it for the life of a warm container.
    `retries`/`backoff` govern reads only; creates and deletes are sent exactly once.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 15.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
        backoff: float = 0.5,
    ) -> None:
        if not api_key:
            raise ValueError("BytePlus API key is empty")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._retry = Retry(
            retries=max(0, retries), backoff=max(0.0, backoff), max_wait=_MAX_BACKOFF
        )
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout),
            transport=transport,
            headers={
                "Authorization": f"Bearer {api_key}",
                "Accept": "application/json",
                "User-Agent": _USER_AGENT,
            },
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"BytePlusClient(base_url={self.base_url!r})"

    def __enter__(self) -> BytePlusClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- operations ---------------------------------------------------------------------

    def create_task(
        self,
        *,
        model: str,
        content: list[dict[str, Any]],
        callback_url: str | None = None,
        resolution: str | None = None,
        ratio: str | None = None,
        duration: int | None = None,
        seed: int | None = None,
        camera_fixed: bool | None = None,
        generate_audio: bool | None = None,
        watermark: bool | None = None,
        return_last_frame: bool | None = None,
        execution_expires_after: int | None = None,
        service_tier: str | None = None,
        priority: int | None = None,
        frames: int | None = None,
        draft: bool | None = None,
        safety_identifier: str | None = None,
    ) -> str:
        """Submit a task and return its id. Sent once: a failure here is never retried.

        `ProviderUnavailable` from this call is ambiguous (the task may exist): reconcile by
        listing tasks rather than creating again.
        """
        try:
            body = CreateTaskRequest(
                model=model,
                content=content,
                callback_url=callback_url,
                resolution=resolution,
                ratio=ratio,
                duration=duration,
                seed=seed,
                camera_fixed=camera_fixed,
                generate_audio=generate_audio,
                watermark=watermark,
                return_last_frame=return_last_frame,
                execution_expires_after=execution_expires_after,
                service_tier=service_tier,
                priority=priority,
                frames=frames,
                draft=draft,
                safety_identifier=safety_identifier,
            )
        except ValidationError as exc:
            raise ValueError(f"invalid BytePlus task: {_first_error(exc)}") from None
        data = self._send("POST", _TASKS_PATH, json=body.model_dump(exclude_none=True))
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            raise ProviderUnavailable("BytePlus accepted the task but returned no id")
        return task_id

    def get_task(self, task_id: str) -> Task:
        """Read one task (retried on transient failures)."""
        path = f"{_TASKS_PATH}/{_segment(task_id)}"
        return self._parse(Task, self._send("GET", path, retry=True))

    def list_tasks(
        self,
        *,
        page_num: int = 1,
        page_size: int = 10,
        status: str | None = None,
        task_ids: Sequence[str] | None = None,
        model: str | None = None,
    ) -> TaskList:
        """List tasks of the last 7 days, newest first (retried on transient failures)."""
        if not (1 <= page_num <= 500 and 1 <= page_size <= 500):
            raise ValueError("page_num and page_size must be 1-500")
        params = [("page_num", str(page_num)), ("page_size", str(page_size))]
        if status:
            params.append(("filter.status", status))
        for task_id in task_ids or ():
            params.append(("filter.task_ids", task_id))
        if model:
            params.append(("filter.model", model))
        query = httpx.QueryParams(tuple(params))
        return self._parse(TaskList, self._send("GET", _TASKS_PATH, params=query, retry=True))

    def delete_task(self, task_id: str) -> None:
        """Cancel a queued task, or delete a finished one's record. Sent once, never retried.

        A running or already cancelled task cannot be deleted: the provider refuses it
        (`ProviderRejected`).
        """
        self._send("DELETE", f"{_TASKS_PATH}/{_segment(task_id)}", json={}, expect_json=False)

    # --- plumbing -----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Remove the API key from any text that could end up in a message or a log."""
        return text.replace(self._api_key, "***") if self._api_key in text else text

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: httpx.QueryParams | None = None,
        expect_json: bool = True,
        retry: bool = False,
    ) -> Any:
        """One call; with `retry`, transient failures (transport, 408, 429, 5xx) are retried."""
        return (self._retry if retry else NO_RETRY).run(
            lambda: self._send_once(method, path, json, params, expect_json),
            transient=lambda error: error.transient,
            what=f"byteplus {method} {path}",
        )

    def _send_once(
        self,
        method: str,
        path: str,
        json: Any,
        params: httpx.QueryParams | None,
        expect_json: bool,
    ) -> Any:
        headers = {"X-Client-Request-Id": _client_request_id()}
        try:
            response = self._http.request(method, path, json=json, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(
                f"BytePlus {method} {path} timed out ({type(exc).__name__})", transient=True
            ) from exc
        except httpx.HTTPError as exc:
            detail = self._scrub(str(exc))[:200]
            raise ProviderUnavailable(
                f"BytePlus {method} {path} failed: {type(exc).__name__}: {detail}", transient=True
            ) from exc
        if response.is_success:
            if not expect_json:
                return None
            try:
                return response.json()
            except ValueError as exc:
                raise ProviderUnavailable(
                    f"BytePlus {method} {path} answered {response.status_code} with invalid JSON",
                    transient=True,
                ) from exc
        raise self._error(method, path, response)

    def _error(self, method: str, path: str, response: httpx.Response) -> ProviderError:
        status = response.status_code
        code, message = _error_body(response)
        request_id = response.headers.get("x-request-id", "")
        what = f"BytePlus {method} {path} answered {status}"
        if code:
            what += f" {code}"
        if message:
            what += f": {message[:300]}"
        if request_id and request_id not in what:
            what += f" (request id {request_id})"
        what = self._scrub(what)
        if status == 429:
            return ProviderRateLimited(
                what,
                provider_code=code,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status in (401, 403, 404):
            # Our key, account or model configuration is wrong: an operator must act.
            return ProviderUnavailable(what, provider_code=code)
        if status == 408 or status >= 500:
            return ProviderUnavailable(what, provider_code=code, transient=True)
        if 400 <= status < 500:
            reason = self._scrub(message.split(" Request id:", 1)[0].strip())[:300]
            return ProviderRejected(what, provider_code=code, provider_message=reason or None)
        return ProviderUnavailable(what, provider_code=code)

    def _parse(self, model: type[M], data: Any) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise ProviderUnavailable(
                f"BytePlus answered an unexpected shape: {_first_error(exc)}"
            ) from exc


def _segment(task_id: str) -> str:
    if not task_id or not task_id.strip():
        raise ValueError("task id is empty")
    return quote(task_id, safe="")


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "body"
    return f"{where}: {first.get('msg', 'invalid')}"


def _error_body(response: httpx.Response) -> tuple[str | None, str]:
    """(code, message) from the provider's `{"error": {...}}` envelope, tolerating anything."""
    try:
        data = response.json()
    except ValueError:
        return None, response.text[:200].strip()
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        code = error.get("code")
        message = error.get("message")
        return (code if isinstance(code, str) and code else None, str(message or ""))
    return None, ""
