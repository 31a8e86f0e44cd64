"""The simulator's state and clock: tasks move along, and callbacks go out, on threads
of the engine's own."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from izgens_local.byteplus_sim.billing import completion_tokens
from izgens_local.byteplus_sim.errors import MESSAGES, ApiError, not_found
from izgens_local.byteplus_sim.files import sign
from izgens_local.byteplus_sim.models import Callback, SimConfig, SimTask


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
        self._callbacks: dict[str, deque[Callback]] = {}
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
                raise not_found(task_id)
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

    def _advance(self) -> tuple[list[Callback], float]:
        """Move every task that is due; returns callbacks to send and seconds to the next due."""
        now, wall = time.monotonic(), time.time()
        events: list[Callback] = []
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

    def _complete(self, task: SimTask, wall: float, events: list[Callback]) -> None:
        if task.expire:
            self._finish(task, "expired", wall, events)
        elif task.fail_code:
            task.error = {
                "code": task.fail_code,
                "message": MESSAGES.get(task.fail_code, f"The task failed: {task.fail_code}."),
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
            f"&sig={sign(self.config.url_secret, video_path, expires)}"
        )
        if task.return_last_frame:
            frame_path = f"/sim/frames/{task.id}.png"
            task.last_frame_url = (
                f"{base}{frame_path}?expires={expires}"
                f"&sig={sign(self.config.url_secret, frame_path, expires)}"
            )

    def _finish(self, task: SimTask, status: str, wall: float, events: list[Callback]) -> None:
        task.status = status
        task.updated_at = wall
        self._emit(task, events)

    def _emit(self, task: SimTask, events: list[Callback]) -> None:
        if task.callback_url:
            events.append(Callback(task.id, task.callback_url, task.status, task.to_json()))

    # callbacks: in order per task, concurrently across tasks

    def _queue_callbacks(self, events: list[Callback]) -> None:
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

    def _deliver(self, http: httpx.Client, event: Callback) -> None:
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
