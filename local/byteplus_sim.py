"""A Seedance (BytePlus ModelArk) simulator that speaks the real task API over HTTP.

It serves `/api/v3/contents/generations/tasks` (create, get, list, delete) as described in
`reference/byteplus-seedance.md`, including what real clients do: nulls for unset fields,
unknown keys, dotted `filter.*` query parameters, `DELETE` answered with `200 {}`. Requests
are validated against the model catalog (`izgens.catalog`) with the provider's error
envelope `{"error": {"code", "message", "param", "type"}}`; the account limits (running
tasks per model, queued-task cap, creates per minute) are those of a real account and can be
changed in `SimConfig`.

Tasks move queued → running → succeeded in a background thread; a succeeded task's
`video_url` points back here at a signed, expiring URL that serves a tiny valid H.264 MP4.
Callbacks are POSTed on every status change and retried for succeeded/failed.

It bills like the provider (§6.1): `usage.completion_tokens` counts the output's real
frames (24 per second plus one) at the output's size and, on 2.x, every reference video's
seconds at that size too, never less than the minimum for video input (read here as: the
input counts at least as long as the output, `VIDEO_INPUT_FLOOR`). Reference videos are
downloaded at create, as the provider does, and their length read from the file (the video
track's samples); one it cannot read, or outside the model's limits, is refused with 400.

Scenario markers in the prompt text provoke every path:

    [sim:fail=CODE]        accepted, then fails with error {code: CODE, message}
    [sim:reject=CODE]      create answers that code (400 for input moderation and parameters;
                           the provider's own status for rate, quota, auth codes)
    [sim:delay=N]          N seconds from create to success (default SimConfig.delay)
    [sim:http=500]         create answers that status with a provider error body; no task
    [sim:http-after=500]   the task IS created, the answer is that status (ambiguous case)
    [sim:timeout]          create answers after SimConfig.timeout_sleep (~30 s); the task is
                           created at that time whether or not the client still waits
    [sim:url=URL]          the task succeeds with `video_url` = URL (host allowlist tests)
    [sim:expire]           the task expires instead of succeeding

Test helpers live under `/sim/` (no auth; a dev tool): `GET /sim/tasks` (every task, deleted
ones too, with the number of create requests seen per callback URL), `GET /sim/callbacks`
(every delivery attempt), `POST /sim/reset`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import logging
import math
import os
import re
import secrets
import string
import struct
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from izgens.catalog import ADAPTIVE, FPS, MODELS, ModelInfo
from izgens.errors import InvalidRequest
from izgens.media import locate_moov, parse_moov

__all__ = [
    "SimConfig",
    "SimEngine",
    "SimServer",
    "create_app",
    "run",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v3"
# the provider's minimum with video input, as a multiple of the output's own tokens: the
# reference says only that there is one (UNCONFIRMED); public price tables put it at about
# an input as long as the output
VIDEO_INPUT_FLOOR = 2
MAX_REFERENCE_VIDEO_BYTES = 200_000_000
TASKS_PATH = f"{API_PREFIX}/contents/generations/tasks"
MAX_SEED = 2_147_483_647
_MARKER = re.compile(r"\[sim:([a-z-]+)(?:=([^\]]*))?\]")


@dataclass
class SimConfig:
    """Behaviour of one simulator; the defaults are those of a real account."""

    api_key: str = field(default="dev-byteplus-key", repr=False)
    delay: float = 2.0  # seconds from create to success when nothing waits for a slot
    queued_share: float = 0.25  # part of `delay` spent queued before running
    max_running: int = 10  # running tasks per model; more wait in `queued`
    max_queued: int = 120  # queued tasks per account; over it create answers 429
    rpm: int = 600  # create requests per minute per model or endpoint
    public_url: str | None = None  # base of video URLs; default: the base URL of the create
    video_url_ttl: float = 24 * 3600.0
    url_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    timeout_sleep: float = 30.0
    callback_timeout: float = 5.0
    callback_retries: int = 3  # extra attempts for succeeded/failed
    callback_retry_delay: float = 1.0
    endpoints: Mapping[str, str] = field(default_factory=dict)  # "ep-…" id → model id

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimConfig:
        """BYTEPLUS_API_KEY and IZGENS_BYTEPLUS_SIM_DELAY / _PUBLIC_URL, as the dev stack sets."""
        env = os.environ if environ is None else environ
        config = cls()
        if env.get("BYTEPLUS_API_KEY"):
            config.api_key = env["BYTEPLUS_API_KEY"]
        if env.get("IZGENS_BYTEPLUS_SIM_DELAY"):
            config.delay = float(env["IZGENS_BYTEPLUS_SIM_DELAY"])
        if env.get("IZGENS_BYTEPLUS_SIM_PUBLIC_URL"):
            config.public_url = env["IZGENS_BYTEPLUS_SIM_PUBLIC_URL"]
        return config


# --- errors -------------------------------------------------------------------------------

_TYPES = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

_MESSAGES = {
    "AuthenticationError": "The API key or AK/SK in the request is missing or invalid.",
    "AccountOverdueError": "The request failed because your account has an overdue balance.",
    "AccessDenied": "The request failed because you do not have access to the resource.",
    "ModelNotOpen": "Your account has not activated the model service.",
    "QuotaExceeded": "The request has exceeded the quota.",
    "ServerOverloaded": "The service is overloaded. Please try again later.",
    "InternalServiceError": "The service encountered an unexpected internal error.",
    "ModelAccountRpmRateLimitExceeded": "The RPM limit of the model for your account has "
    "been exceeded. Please try again later.",
    "RateLimitExceeded.EndpointRPMExceeded": "The Requests Per Minute (RPM) limit of the "
    "associated endpoint for your account has been exceeded.",
    "InputTextSensitiveContentDetected": "The request failed because the input text may "
    "contain sensitive information.",
    "InputImageSensitiveContentDetected": "The request failed because the input image may "
    "contain sensitive information.",
    "InputImageSensitiveContentDetected.PrivacyInformation": "The request failed because the "
    "input image may contain real person.",
    "InputVideoSensitiveContentDetected": "The request failed because the input video may "
    "contain sensitive information.",
    "OutputVideoSensitiveContentDetected": "The request failed because the output video may "
    "contain sensitive information.",
    "OutputVideoSensitiveContentDetected.PolicyViolation": "The request failed because the "
    "output video may be related to copyright restrictions.",
    "OutputAudioSensitiveContentDetected.PolicyViolation": "The request failed because the "
    "output audio may be related to copyright restrictions.",
}

_STATUS_BY_CODE_PREFIX = (
    ("AuthenticationError", 401),
    ("AccountOverdueError", 403),
    ("AccessDenied", 403),
    ("ModelNotOpen", 404),
    ("InvalidEndpoint", 404),
    ("RateLimitExceeded", 429),
    ("ModelAccount", 429),
    ("APIAccount", 429),
    ("AccountRateLimitExceeded", 429),
    ("QuotaExceeded", 429),
    ("ServerOverloaded", 429),
    ("SetLimitExceeded", 429),
    ("InternalServiceError", 500),
)

_CODE_BY_STATUS = {
    400: "InvalidParameter",
    401: "AuthenticationError",
    403: "AccessDenied",
    404: "InvalidEndpointOrModel.NotFound",
    429: "ServerOverloaded",
}


def _status_for_code(code: str) -> int:
    for prefix, status in _STATUS_BY_CODE_PREFIX:
        if code.startswith(prefix):
            return status
    return 400


def _request_id() -> str:
    """Shaped like the provider's: 021 + milliseconds + random hex."""
    return f"021{int(time.time() * 1000)}{secrets.token_hex(16)}"


class ApiError(Exception):
    """A provider error answer: HTTP status and the `error` envelope."""

    def __init__(self, status: int, code: str, message: str = "", param: str = "") -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message or _MESSAGES.get(code, f"The request failed: {code}.")
        self.param = param

    def response(self, request_id: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
        body = {
            "error": {
                "code": self.code,
                "message": f"{self.message} Request id: {request_id}",
                "param": self.param,
                "type": _TYPES.get(self.status, "InternalServerError"),
            }
        }
        return JSONResponse(
            body, self.status, headers={"X-Request-Id": request_id, **(headers or {})}
        )


def _invalid(param: str, why: str) -> ApiError:
    return ApiError(
        400,
        "InvalidParameter",
        f"The parameter `{param}` specified in the request is not valid: {why}.",
        param,
    )


def _missing(param: str) -> ApiError:
    return ApiError(
        400,
        "MissingParameter",
        f"The request failed because it is missing one or multiple required parameters: `{param}`.",
        param,
    )


# --- tasks --------------------------------------------------------------------------------


@dataclass
class SimTask:
    """One task and everything the simulator needs to move it along."""

    id: str
    model: str  # as requested (model id or endpoint id), echoed back
    info: ModelInfo
    status: str
    created_at: float
    updated_at: float
    prompt: str
    callback_url: str | None
    base_url: str
    resolution: str
    ratio: str
    duration: int | None
    frames: int | None
    seed: int
    generate_audio: bool
    draft: bool
    service_tier: str
    execution_expires_after: int
    priority: int
    safety_identifier: str | None
    return_last_frame: bool
    queued_for: float  # seconds queued at least, before a running slot is taken
    run_for: float
    seq: int = 0
    queued_until: float = 0.0  # monotonic
    run_until: float | None = None
    fail_code: str | None = None
    video_url_override: str | None = None
    expire: bool = False
    error: dict[str, str] | None = None
    video_url: str | None = None
    last_frame_url: str | None = None
    completion_tokens: int = 0
    deleted: bool = False
    input_video_ms: tuple[int, ...] = ()  # each reference video's length, read at create
    video_urls: list[tuple[int, str]] = field(default_factory=list)  # (content index, URL)

    def to_json(self) -> dict[str, Any]:
        """The task object as GET, list and callbacks show it."""
        data: dict[str, Any] = {
            "id": self.id,
            "model": self.model,
            "status": self.status,
            "error": self.error,
            "created_at": int(self.created_at),
            "updated_at": int(self.updated_at),
            "seed": self.seed,
            "resolution": self.resolution,
            "ratio": self.ratio,
        }
        if self.frames is not None:
            data["frames"] = self.frames
        else:
            data["duration"] = self.duration
        data.update(
            framespersecond=FPS,
            generate_audio=self.generate_audio,
            draft=self.draft,
            service_tier=self.service_tier,
            execution_expires_after=self.execution_expires_after,
        )
        if self.info.supports_priority:
            data["priority"] = self.priority
        if self.safety_identifier is not None:
            data["safety_identifier"] = self.safety_identifier
        if self.status == "succeeded":
            content: dict[str, Any] = {"video_url": self.video_url}
            if self.last_frame_url:
                content["last_frame_url"] = self.last_frame_url
            data["content"] = content
            data["usage"] = {
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.completion_tokens,
            }
        return data


@dataclass(frozen=True)
class _Callback:
    task_id: str
    url: str
    status: str
    body: dict[str, Any]


def _task_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
    return f"cgt-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{suffix}"


def _markers(prompt: str) -> dict[str, str]:
    return {m.group(1): (m.group(2) or "") for m in _MARKER.finditer(prompt)}


def _sign(secret: bytes, path: str, expires: int) -> str:
    return hmac.new(secret, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()


def _tiny_png() -> bytes:
    """A valid 1×1 PNG for `last_frame_url`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\xff")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def _load_video() -> bytes:
    return resources.files("izgens_local").joinpath("fixtures/tiny10.mp4").read_bytes()


class SimEngine:
    """The simulator's state and clock: thread-safe, driven by one background thread."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._seq = itertools.count(1)
        self.tasks: dict[str, SimTask] = {}
        self.create_requests: Counter[str] = Counter()
        self.deliveries: list[dict[str, Any]] = []
        self._rpm: dict[str, deque[float]] = {}
        self._pending: list[tuple[float, SimTask]] = []
        self._callbacks: dict[str, deque[_Callback]] = {}
        self._draining: set[str] = set()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._http: httpx.Client | None = None

    # lifecycle

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stopping.clear()
            self._http = httpx.Client(
                timeout=self.config.callback_timeout,
                headers={"User-Agent": "byteplus-sim/1.0"},
                follow_redirects=False,
            )
            self._executor = ThreadPoolExecutor(8, thread_name_prefix="byteplus-sim-callback")
            self._thread = threading.Thread(target=self._loop, name="byteplus-sim", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, executor, http = self._thread, self._executor, self._http
            self._thread = self._executor = self._http = None
            self._stopping.set()
            self._wake.notify_all()
        if thread is not None:
            thread.join(5)
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
        if http is not None:
            http.close()

    def reset(self) -> None:
        with self._lock:
            self.tasks.clear()
            self.create_requests.clear()
            self.deliveries.clear()
            self._rpm.clear()
            self._pending.clear()
            self._callbacks.clear()

    # requests

    def count_create(self, callback_url: str | None) -> None:
        with self._lock:
            self.create_requests[callback_url or ""] += 1

    def check_rpm(self, model: str) -> bool:
        """Record one create for `model`; False when it is over the per-minute limit."""
        now = time.monotonic()
        with self._lock:
            window = self._rpm.setdefault(model, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.config.rpm:
                return False
            window.append(now)
            return True

    def queued_count(self) -> int:
        with self._lock:
            live = sum(1 for t in self.tasks.values() if t.status == "queued" and not t.deleted)
            return live + len(self._pending)

    def add(self, task: SimTask, *, after: float = 0.0) -> None:
        """Store a new task now, or `after` seconds from now (the timeout scenario).

        Over the account's queued-task cap it raises 429 QuotaExceeded instead; the check and
        the insert are one step, so concurrent creates cannot overshoot the cap.
        """
        with self._lock:
            if self.queued_count() >= self.config.max_queued:
                raise ApiError(429, "QuotaExceeded")
            if after > 0:
                self._pending.append((time.monotonic() + after, task))
            else:
                self._store(task, time.monotonic(), time.time())
            self._wake.notify_all()

    def _store(self, task: SimTask, now: float, wall: float) -> None:
        task.seq = next(self._seq)
        task.created_at = task.updated_at = wall
        task.queued_until = now + task.queued_for
        self.tasks[task.id] = task

    def get(self, task_id: str) -> SimTask | None:
        with self._lock:
            task = self.tasks.get(task_id)
            return None if task is None or task.deleted else task

    def snapshot(self, task_id: str) -> dict[str, Any] | None:
        with self._lock:
            task = self.get(task_id)
            return None if task is None else task.to_json()

    def listing(
        self,
        *,
        status: str | None = None,
        model: str | None = None,
        service_tier: str | None = None,
        task_ids: set[str] | frozenset[str] = frozenset(),
    ) -> list[dict[str, Any]]:
        """Live tasks newest first, filtered as `filter.*` asks."""
        with self._lock:
            return [
                t.to_json()
                for t in sorted(self.tasks.values(), key=lambda t: t.seq, reverse=True)
                if not t.deleted
                and (not status or t.status == status)
                and (not model or t.model == model)
                and (not service_tier or t.service_tier == service_tier)
                and (not task_ids or t.id in task_ids)
            ]

    def delivery_log(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for d in self.deliveries]

    def delete(self, task_id: str) -> None:
        """Cancel a queued task or drop a finished one; refuse running and cancelled ones."""
        with self._lock:
            task = self.get(task_id)
            if task is None:
                raise _not_found(task_id)
            if task.status == "queued":
                task.status = "cancelled"
                task.updated_at = time.time()
            elif task.status in ("running", "cancelled"):
                raise ApiError(
                    400,
                    "InvalidParameter",
                    f"The task {task_id} cannot be deleted or cancelled in status {task.status}.",
                    "id",
                )
            else:
                task.deleted = True
            self._wake.notify_all()

    def inspect(self) -> dict[str, Any]:
        with self._lock:
            tasks = []
            for task in self.tasks.values():
                item = task.to_json()
                item["sim"] = {
                    "prompt": task.prompt,
                    "callback_url": task.callback_url,
                    "create_count": self.create_requests.get(task.callback_url or "", 0),
                    "deleted": task.deleted,
                    "video_urls": [url for _, url in task.video_urls],
                    "input_video_ms": list(task.input_video_ms),
                }
                tasks.append(item)
            return {
                "tasks": tasks,
                "create_requests": dict(self.create_requests),
                "total_create_requests": sum(self.create_requests.values()),
            }

    # the clock

    def _loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                events, wait = self._advance()
                self._queue_callbacks(events)
                if wait > 0 and not self._stopping.is_set():
                    self._wake.wait(min(wait, 0.5))

    def _advance(self) -> tuple[list[_Callback], float]:
        """Move every task that is due; returns callbacks to send and seconds to the next due."""
        now, wall = time.monotonic(), time.time()
        events: list[_Callback] = []
        due: list[float] = []

        still_pending = []
        for at, task in self._pending:
            if at <= now:
                self._store(task, now, wall)
                due.append(task.queued_until)
            else:
                still_pending.append((at, task))
                due.append(at)
        self._pending = still_pending

        running: Counter[str] = Counter()
        for task in self.tasks.values():
            if task.deleted:
                continue
            if task.status in ("queued", "running") and (
                wall >= task.created_at + task.execution_expires_after
            ):
                self._finish(task, "expired", wall, events)
                continue
            if task.status == "running" and task.run_until is not None:
                if task.run_until <= now:
                    self._complete(task, wall, events)
                else:
                    running[task.info.id] += 1
                    due.append(task.run_until)

        for task in sorted(self.tasks.values(), key=lambda t: t.seq):
            if task.deleted or task.status != "queued":
                continue
            if task.queued_until > now:
                due.append(task.queued_until)
                continue
            if running[task.info.id] >= self.config.max_running:
                continue  # waits for a slot; a finishing task wakes the loop
            running[task.info.id] += 1
            task.status = "running"
            task.updated_at = wall
            task.run_until = now + task.run_for
            due.append(task.run_until)
            self._emit(task, events)

        wait = (min(due) - now) if due else 0.5
        return events, max(wait, 0.005)

    def _complete(self, task: SimTask, wall: float, events: list[_Callback]) -> None:
        if task.expire:
            self._finish(task, "expired", wall, events)
        elif task.fail_code:
            task.error = {
                "code": task.fail_code,
                "message": _MESSAGES.get(task.fail_code, f"The task failed: {task.fail_code}."),
            }
            self._finish(task, "failed", wall, events)
        else:
            self._succeed(task)
            self._finish(task, "succeeded", wall, events)

    def _succeed(self, task: SimTask) -> None:
        task.completion_tokens = completion_tokens(
            task.info,
            task.resolution,
            task.ratio,
            duration=task.duration,
            frames=task.frames,
            input_video_ms=task.input_video_ms,
        )
        expires = int(time.time() + self.config.video_url_ttl)
        base = (self.config.public_url or task.base_url).rstrip("/")
        video_path = f"/sim/videos/{task.id}.mp4"
        task.video_url = task.video_url_override or (
            f"{base}{video_path}?expires={expires}"
            f"&sig={_sign(self.config.url_secret, video_path, expires)}"
        )
        if task.return_last_frame:
            frame_path = f"/sim/frames/{task.id}.png"
            task.last_frame_url = (
                f"{base}{frame_path}?expires={expires}"
                f"&sig={_sign(self.config.url_secret, frame_path, expires)}"
            )

    def _finish(self, task: SimTask, status: str, wall: float, events: list[_Callback]) -> None:
        task.status = status
        task.updated_at = wall
        self._emit(task, events)

    def _emit(self, task: SimTask, events: list[_Callback]) -> None:
        if task.callback_url:
            events.append(_Callback(task.id, task.callback_url, task.status, task.to_json()))

    # callbacks: in order per task, concurrently across tasks

    def _queue_callbacks(self, events: list[_Callback]) -> None:
        executor = self._executor
        if executor is None:
            return
        for event in events:
            self._callbacks.setdefault(event.task_id, deque()).append(event)
            if event.task_id not in self._draining:
                self._draining.add(event.task_id)
                executor.submit(self._drain, event.task_id)

    def _drain(self, task_id: str) -> None:
        while True:
            with self._lock:
                queue = self._callbacks.get(task_id)
                if not queue or self._stopping.is_set():
                    self._callbacks.pop(task_id, None)
                    self._draining.discard(task_id)
                    return
                event = queue.popleft()
                http = self._http
            if http is not None:
                self._deliver(http, event)

    def _deliver(self, http: httpx.Client, event: _Callback) -> None:
        retries = self.config.callback_retries if event.status in ("succeeded", "failed") else 0
        for attempt in range(1, retries + 2):
            if self._stopping.is_set():
                return
            try:
                answer = http.post(event.url, json=event.body)
                outcome: int | str = answer.status_code
                ok = answer.is_success
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                outcome, ok = type(exc).__name__, False
            with self._lock:
                self.deliveries.append(
                    {
                        "task_id": event.task_id,
                        "url": event.url,
                        "status": event.status,
                        "attempt": attempt,
                        "outcome": outcome,
                        "ok": ok,
                        "at": time.time(),
                    }
                )
            if ok:
                return
            if attempt <= retries:
                self._stopping.wait(self.config.callback_retry_delay)


def _not_found(task_id: str) -> ApiError:
    return ApiError(404, "ResourceNotFound", f"The specified task {task_id} is not found.", "id")


# --- request validation -------------------------------------------------------------------


def _opt_bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise _invalid(key, "expected a boolean")
    return value


def _opt_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise _invalid(key, "expected an integer")
    return value


def _opt_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _invalid(key, "expected a string")
    return value


@dataclass
class _Content:
    prompt: str = ""
    first_frame: int = 0
    last_frame: int = 0
    reference_images: int = 0
    videos: int = 0
    audios: int = 0
    draft_task: bool = False
    text_index: int = 0
    image_index: int | None = None
    video_index: int | None = None
    video_urls: list[tuple[int, str]] = field(default_factory=list)


def _url_of(item: Mapping[str, Any], key: str, index: int) -> None:
    inner = item.get(key)
    url = inner.get("url") if isinstance(inner, Mapping) else None
    if not isinstance(url, str) or not url:
        raise _missing(f"content[{index}].{key}.url")


def _parse_content(raw: Any, info: ModelInfo) -> _Content:
    if raw is None or raw == []:
        raise _missing("content")
    if not isinstance(raw, list):
        raise _invalid("content", "expected an array")
    found = _Content()
    texts = 0
    for i, item in enumerate(raw):
        where = f"content[{i}]"
        if not isinstance(item, Mapping):
            raise _invalid(where, "expected an object")
        kind, role = item.get("type"), item.get("role")
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise _missing(f"{where}.text")
            texts += 1
            found.prompt, found.text_index = text, i
        elif kind == "image_url":
            _url_of(item, "image_url", i)
            found.image_index = i if found.image_index is None else found.image_index
            if role in (None, "first_frame"):
                found.first_frame += 1
            elif role == "last_frame":
                found.last_frame += 1
            elif role == "reference_image":
                if "image" not in info.references:
                    raise _invalid(
                        f"{where}.role", f"reference_image is not supported by {info.id}"
                    )
                found.reference_images += 1
            else:
                raise _invalid(f"{where}.role", f"unknown role {role!r}")
        elif kind in ("video_url", "audio_url"):
            _url_of(item, kind, i)
            expected = "reference_video" if kind == "video_url" else "reference_audio"
            if role not in (None, expected):
                raise _invalid(f"{where}.role", f"unknown role {role!r}")
            if info.major < 2:
                raise _invalid(f"{where}.type", f"{kind} is not supported by {info.id}")
            if kind == "video_url":
                found.videos += 1
                found.video_index = i if found.video_index is None else found.video_index
                found.video_urls.append((i, item["video_url"]["url"]))
            else:
                found.audios += 1
        elif kind == "draft_task":
            draft = item.get("draft_task")
            if not info.supports_draft:
                raise _invalid(f"{where}.type", f"draft_task is not supported by {info.id}")
            if not isinstance(draft, Mapping) or not isinstance(draft.get("id"), str):
                raise _missing(f"{where}.draft_task.id")
            found.draft_task = True
        else:
            raise _invalid(f"{where}.type", f"unknown content type {kind!r}")
    if texts > 1:
        raise _invalid("content", "at most one text item is allowed")
    _check_modes(found, info)
    return found


def _check_modes(found: _Content, info: ModelInfo) -> None:
    frames = found.first_frame + found.last_frame
    multimodal = found.reference_images + found.videos + found.audios
    if frames and multimodal:
        raise _invalid("content", "first-frame, first/last-frame and reference modes are exclusive")
    if found.first_frame > 1 or found.last_frame > 1:
        raise _invalid("content", "at most one first frame and one last frame are allowed")
    if found.last_frame and not found.first_frame:
        raise _invalid("content", "a last frame needs a first frame")
    if found.last_frame and not info.supports_last_frame:
        raise _invalid("content", f"first/last-frame mode is not supported by {info.id}")
    image_rule = info.references.get("image")
    if image_rule and found.reference_images > image_rule.max_count:
        raise _invalid("content", f"at most {image_rule.max_count} reference images are allowed")
    video_rule = info.references.get("video")
    if video_rule and found.videos > video_rule.max_count:
        raise _invalid("content", f"at most {video_rule.max_count} reference videos are allowed")
    if found.audios > info.max_reference_audios:
        raise _invalid("content", f"at most {info.max_reference_audios} reference audios")
    only_audio = found.audios and not (found.reference_images or found.videos)
    if only_audio and not info.adaptive_only_with_video:  # 2.5 alone takes audio-only
        raise _invalid("content", "reference audio needs a reference image or video")
    if not (found.prompt or frames or multimodal or found.draft_task):
        raise _missing("content")


@dataclass
class _Accepted:
    """A validated create body, with the provider's defaults applied."""

    resolution: str
    ratio: str
    duration: int | None
    frames: int | None
    seed: int
    generate_audio: bool
    draft: bool
    service_tier: str
    execution_expires_after: int
    priority: int
    safety_identifier: str | None
    return_last_frame: bool
    callback_url: str | None
    content: _Content


def _validate(body: Mapping[str, Any], info: ModelInfo) -> _Accepted:
    content = _parse_content(body.get("content"), info)
    image_led = bool(content.first_frame)

    draft = bool(_opt_bool(body, "draft"))
    if draft and not info.supports_draft:
        raise _invalid("draft", f"draft is not supported by {info.id}")

    resolution = _opt_str(body, "resolution") or ("480p" if draft else info.default_resolution)
    if resolution not in info.resolutions or (draft and resolution != "480p"):
        raise _invalid("resolution", f"{resolution} is not supported by {info.id}")

    ratio = _opt_str(body, "ratio") or info.default_ratio(with_image=image_led)
    if ratio not in info.ratios:
        raise _invalid("ratio", f"{ratio} is not supported by {info.id}")
    if ratio == ADAPTIVE and not image_led and not info.adaptive_text_only:
        raise _invalid("ratio", f"adaptive needs a first-frame image on {info.id}")
    if info.adaptive_only_with_video and (content.videos or image_led) and ratio != ADAPTIVE:
        raise _invalid("ratio", f"only adaptive is supported for this task type on {info.id}")

    frames = _opt_int(body, "frames")
    if frames is not None:
        if not info.supports_frames:
            raise _invalid("frames", f"frames is not supported by {info.id}")
        if not (29 <= frames <= 289 and (frames - 25) % 4 == 0):
            raise _invalid("frames", "frames must be 25+4n within [29, 289]")
    duration = _opt_int(body, "duration")
    low, high = info.duration_range
    if duration is None:
        duration = info.api_default_duration
    elif duration == -1:
        if not info.auto_duration:
            raise _invalid("duration", f"-1 is not supported by {info.id}")
    elif not low <= duration <= high:
        raise _invalid("duration", f"duration must be within [{low}, {high}] for {info.id}")
    if duration == -1:
        duration = min(max(5, low), high)  # the "model" picks a length
    if frames is not None:
        duration = None

    seed = _opt_int(body, "seed")
    if seed is not None and not -1 <= seed <= MAX_SEED:
        raise _invalid("seed", f"seed must be within [-1, {MAX_SEED}]")
    if seed not in (None, -1) and not info.supports_seed:
        raise _invalid("seed", f"seed is not supported by {info.id}")
    if seed in (None, -1):
        seed = secrets.randbelow(MAX_SEED)

    if _opt_bool(body, "camera_fixed") and not info.supports_camera_fixed:
        raise _invalid("camera_fixed", f"camera_fixed is not supported by {info.id}")
    audio = _opt_bool(body, "generate_audio")
    if audio and not info.supports_audio:
        raise _invalid("generate_audio", f"generate_audio is not supported by {info.id}")
    generate_audio = info.supports_audio if audio is None else audio
    _opt_bool(body, "watermark")

    return_last_frame = bool(_opt_bool(body, "return_last_frame"))
    if return_last_frame and draft:
        raise _invalid("return_last_frame", "return_last_frame is not supported with draft")

    tier = _opt_str(body, "service_tier") or "default"
    if tier not in ("default", "flex"):
        raise _invalid("service_tier", "service_tier must be default or flex")
    if tier == "flex" and (not info.supports_flex or draft):
        raise _invalid("service_tier", f"flex is not supported by {info.id} in this mode")

    expires = _opt_int(body, "execution_expires_after")
    if expires is not None and not 3600 <= expires <= 259200:
        raise _invalid("execution_expires_after", "must be within [3600, 259200]")

    priority = _opt_int(body, "priority")
    if priority is not None and not 0 <= priority <= 9:
        raise _invalid("priority", "priority must be within [0, 9]")
    if priority and (not info.supports_priority or tier == "flex"):
        raise _invalid("priority", f"priority is not supported by {info.id} in this mode")

    safety = _opt_str(body, "safety_identifier")
    if safety is not None and len(safety) > 64:
        raise _invalid("safety_identifier", "at most 64 characters")

    output_format = _opt_str(body, "output_format")
    if output_format is not None and output_format not in info.output_formats:
        raise _invalid("output_format", f"{output_format} is not supported by {info.id}")

    callback_url = _opt_str(body, "callback_url")
    if callback_url is not None:
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _invalid("callback_url", "expected an http(s) URL")

    if ratio == ADAPTIVE:
        ratio = "16:9"  # the ratio the "model" picked, as the real task shows it
    return _Accepted(
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        frames=frames,
        seed=seed,
        generate_audio=generate_audio,
        draft=draft,
        service_tier=tier,
        execution_expires_after=expires or 172800,
        priority=priority or 0,
        safety_identifier=safety,
        return_last_frame=return_last_frame,
        callback_url=callback_url or None,
        content=content,
    )


def _marker_rejection(marks: Mapping[str, str], content: _Content) -> ApiError | None:
    if "reject" in marks:
        code = marks["reject"] or "InputTextSensitiveContentDetected"
        param = f"content[{content.text_index}]"
        if code.startswith("InputImage") and content.image_index is not None:
            param = f"content[{content.image_index}]"
        if code.startswith("InputVideo") and content.video_index is not None:
            param = f"content[{content.video_index}]"
        return ApiError(_status_for_code(code), code, param=param)
    if "http" in marks:
        status = _http_status(marks["http"])
        return ApiError(status, _CODE_BY_STATUS.get(status, "InternalServiceError"))
    return None


def _http_status(value: str) -> int:
    try:
        status = int(value)
    except ValueError:
        return 500
    return status if 400 <= status <= 599 else 500


def _delay(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default


def completion_tokens(
    info: ModelInfo,
    resolution: str,
    ratio: str,
    *,
    duration: int | None,
    frames: int | None = None,
    input_video_ms: tuple[int, ...] = (),
) -> int:
    """What the provider bills a succeeded task (see the module docstring)."""
    width, height = info.sizes[resolution][ratio]
    output = frames if frames is not None else FPS * (duration or 5) + 1
    tokens = math.ceil(width * height * output / 1024)
    if not input_video_ms:
        return tokens
    inputs = sum(math.ceil(FPS * ms / 1000) for ms in input_video_ms)
    return max(math.ceil(width * height * (output + inputs) / 1024), VIDEO_INPUT_FLOOR * tokens)


async def _download(url: str, param: str) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=10.0) as http, http.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise _invalid(param, f"the video could not be downloaded ({answer.status_code})")
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > MAX_REFERENCE_VIDEO_BYTES:
                    raise _invalid(param, "the video is larger than 200 MB")
    except httpx.HTTPError:
        raise _invalid(param, "the video could not be downloaded") from None
    return bytes(data)


async def _reference_video_ms(urls: list[tuple[int, str]], info: ModelInfo) -> tuple[int, ...]:
    """Each reference video downloaded and measured (its video track's samples), within the
    model's limits; 400 InvalidParameter naming the content item otherwise."""
    lengths = []
    shortest, longest = info.video_seconds
    for index, url in urls:
        param = f"content[{index}].video_url"
        data = await _download(url, param)
        try:
            index_box = locate_moov(data, 0, len(data))
            if isinstance(index_box, tuple):
                raise InvalidRequest("no index")
            ms = parse_moov(index_box).content_ms
        except InvalidRequest:
            raise _invalid(param, "the video could not be decoded") from None
        if not shortest * 1000 <= ms <= longest * 1000:
            raise _invalid(param, f"each video must last {shortest}-{longest} s")
        lengths.append(ms)
    if sum(lengths) > info.video_total_seconds * 1000:
        raise _invalid("content", f"the videos may last {info.video_total_seconds} s in total")
    return tuple(lengths)


# --- the app ------------------------------------------------------------------------------


def create_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app (`app.state.engine` holds its state).

    The engine's thread starts with the app's lifespan, or with the first API request when
    the app is mounted somewhere that runs no lifespan; it stops with the lifespan.
    """
    config = config or SimConfig()
    engine = SimEngine(config)
    video = _load_video()
    png = _tiny_png()
    api_key = config.api_key.encode()

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key)

    def ok(body: Any, request_id: str, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status, headers={"X-Request-Id": request_id})

    async def create_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            engine.count_create(None)
            return _invalid("body", "the request body must be a JSON object").response(request_id)
        callback = body.get("callback_url")
        engine.count_create(callback if isinstance(callback, str) else None)
        try:
            model = body.get("model")
            if model is None or model == "":
                raise _missing("model")
            if not isinstance(model, str):
                raise _invalid("model", "expected a string")
            info = MODELS.get(config.endpoints.get(model, model))
            if info is None:
                raise ApiError(
                    404,
                    "InvalidEndpointOrModel.NotFound",
                    f"The model or endpoint {model} does not exist or you do not have access "
                    "to it.",
                    "model",
                )
            if not engine.check_rpm(model):
                code = (
                    "RateLimitExceeded.EndpointRPMExceeded"
                    if model.startswith("ep-")
                    else "ModelAccountRpmRateLimitExceeded"
                )
                raise ApiError(429, code)
            accepted = _validate(body, info)
            marks = _markers(accepted.content.prompt)
            rejection = _marker_rejection(marks, accepted.content)
            if rejection is not None:
                raise rejection
            videos = await _reference_video_ms(accepted.content.video_urls, info)
        except ApiError as exc:
            return exc.response(request_id)

        delay = _delay(marks.get("delay"), config.delay)
        queued_for = delay * min(max(config.queued_share, 0.0), 1.0)
        task = SimTask(
            id=_task_id(),
            model=model,
            info=info,
            status="queued",
            created_at=time.time(),
            updated_at=time.time(),
            prompt=accepted.content.prompt,
            callback_url=accepted.callback_url,
            base_url=config.public_url or str(request.base_url),
            resolution=accepted.resolution,
            ratio=accepted.ratio,
            duration=accepted.duration,
            frames=accepted.frames,
            seed=accepted.seed,
            generate_audio=accepted.generate_audio,
            draft=accepted.draft,
            service_tier=accepted.service_tier,
            execution_expires_after=accepted.execution_expires_after,
            priority=accepted.priority,
            safety_identifier=accepted.safety_identifier,
            return_last_frame=accepted.return_last_frame,
            queued_for=queued_for,
            run_for=delay - queued_for,
            fail_code=marks.get("fail") or None,
            video_url_override=marks.get("url") or None,
            expire="expire" in marks,
            input_video_ms=videos,
            video_urls=accepted.content.video_urls,
        )
        if "fail" in marks and not task.fail_code:
            task.fail_code = "InternalServiceError"
        try:
            engine.add(task, after=config.timeout_sleep if "timeout" in marks else 0.0)
        except ApiError as exc:
            return exc.response(request_id)
        if "timeout" in marks:
            await asyncio.sleep(config.timeout_sleep)
            return ok({"id": task.id}, request_id)
        if "http-after" in marks:
            status = _http_status(marks["http-after"])
            code = _CODE_BY_STATUS.get(status, "InternalServiceError")
            return ApiError(status, code).response(request_id)
        return ok({"id": task.id}, request_id)

    async def list_tasks(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        query = request.query_params
        try:
            page_num = _page_param(query.get("page_num"), "page_num", 1)
            page_size = _page_param(query.get("page_size"), "page_size", 10)
        except ApiError as exc:
            return exc.response(request_id)
        items = engine.listing(
            status=query.get("filter.status"),
            model=query.get("filter.model"),
            service_tier=query.get("filter.service_tier"),
            task_ids=set(query.getlist("filter.task_ids")),
        )
        start = (page_num - 1) * page_size
        return ok({"items": items[start : start + page_size], "total": len(items)}, request_id)

    async def get_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        task_id = request.path_params["task_id"]
        data = engine.snapshot(task_id)
        if data is None:
            return _not_found(task_id).response(request_id)
        return ok(data, request_id)

    async def delete_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        try:
            engine.delete(request.path_params["task_id"])
        except ApiError as exc:
            return exc.response(request_id)
        return ok({}, request_id)

    def signed_file(request: Request, path: str, data: bytes, media_type: str) -> Response:
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            expires = 0
        sig = request.query_params.get("sig", "")
        if not hmac.compare_digest(sig.encode(), _sign(config.url_secret, path, expires).encode()):
            return _denied("SignatureDoesNotMatch", "The request signature does not match.")
        if expires < time.time():
            return _denied("AccessDenied", "Request has expired.")
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})

    async def video_file(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        return signed_file(request, f"/sim/videos/{task_id}.mp4", video, "video/mp4")

    async def frame_file(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        return signed_file(request, f"/sim/frames/{task_id}.png", png, "image/png")

    async def sim_tasks(request: Request) -> Response:
        return JSONResponse(engine.inspect())

    async def sim_callbacks(request: Request) -> Response:
        return JSONResponse({"deliveries": engine.delivery_log()})

    async def sim_reset(request: Request) -> Response:
        engine.reset()
        return JSONResponse({})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    routes = [
        Route(TASKS_PATH, create_task, methods=["POST"]),
        Route(TASKS_PATH, list_tasks, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", get_task, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", delete_task, methods=["DELETE"]),
        Route("/sim/videos/{task_id}.mp4", video_file, methods=["GET"]),
        Route("/sim/frames/{task_id}.png", frame_file, methods=["GET"]),
        Route("/sim/tasks", sim_tasks, methods=["GET"]),
        Route("/sim/callbacks", sim_callbacks, methods=["GET"]),
        Route("/sim/reset", sim_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.engine = engine
    return app


def _page_param(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise _invalid(name, "expected an integer") from None
    if not 1 <= number <= 500:
        raise _invalid(name, "must be within [1, 500]")
    return number


def _denied(code: str, message: str) -> Response:
    """Object storage's refusal, as TOS/S3 answer an expired or forged presigned URL."""
    body = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
    body += f"<Message>{message}</Message></Error>"
    return Response(body, 403, media_type="application/xml")


# --- serving ------------------------------------------------------------------------------


def run(host: str, port: int, config: SimConfig) -> None:
    """Serve the simulator with uvicorn until interrupted (the dev stack's entry point)."""
    import uvicorn  # dev-only dependency

    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", ws="none")


class SimServer:
    """The simulator on a real socket in a background thread; for tests and scripts.

    with SimServer(SimConfig(delay=0.2)) as sim:
        client = BytePlusClient(sim.api_url, sim.config.api_key)
    """

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        from izgens_local.servers import ServerThread

        self.config = config
        self.app = create_app(config)
        self.engine: SimEngine = self.app.state.engine
        self._server = ServerThread(
            self.app,
            port,
            host=host,
            name="byteplus-sim-server",
            log_config=None,
            log_level=None,
            access_log=True,
            http="h11",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.url = self._server.url
        self.api_url = self.url + API_PREFIX

    def start(self) -> SimServer:
        self._server.start(timeout=10)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def iter_tasks(self) -> Iterator[dict[str, Any]]:
        """Every task the simulator holds (deleted ones included), as `/sim/tasks` shows."""
        yield from self.engine.inspect()["tasks"]
