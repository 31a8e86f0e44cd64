"""The container entry point (Railway, or any host that runs containers): one ASGI app.

    uvicorn izgens.container:app --host 0.0.0.0 --port 8080 --no-proxy-headers

(`--no-proxy-headers`: the client address is `izgens.http.client_ip`'s to decide; uvicorn's
proxy headers trust the leftmost X-Forwarded-For entry, which the client writes.)

Each HTTP function's own FastAPI app is mounted under `/{name}`, as the dev server mounts
them but without any dev route, so a path is the function's Function URL path with its name
in front (`/account/me`). The outer app's edge middleware assigns the request id, limits the
body, adds the security headers and answers CORS (for the origins in CORS_ORIGINS; on AWS
the Function URLs do) once; the mounted apps see that and step aside.

Exports requested here are built by a worker thread of this process (`izgens.export_jobs`),
stopped with the lifespan after the build in progress.

On AWS an EventBridge schedule invokes `cleanup`; here a thread started with the ASGI
lifespan runs `izgens.cleanup.run_jobs()` every CLEANUP_INTERVAL_SECONDS (0 = off) and is
stopped on shutdown. Every job is safe to run concurrently with itself, so each replica
running its own schedule needs no coordination. S3's ObjectCreated event has no stand-in:
the copier completes the generation itself (`video_stored` is only the second path), and a
copy that died halfway is finished by the schedule's reconciliation.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from izgens.http import create_app

__all__ = [
    "HTTP_FUNCTIONS",
    "CleanupScheduler",
    "app",
    "create_container_app",
    "run_all_jobs",
]

logger = logging.getLogger("izgens.container")

HTTP_FUNCTIONS = ("generate", "status", "account", "plisio_webhook", "privacy_export")
# a shutdown waits this long for a cleanup run in progress (jobs are bounded per run);
# keep the host's grace period (Railway: drainingSeconds) above it
STOP_TIMEOUT_SECONDS = 25.0
# the first run comes soon after start, not a whole interval later: a container that is
# replaced more often than the interval must still run the jobs
FIRST_RUN_AFTER_SECONDS = 10.0


def run_all_jobs() -> object:
    from izgens.cleanup import run_jobs

    return run_jobs()


class CleanupScheduler:
    """Calls `run` every `interval` seconds on a daemon thread until `stop()`.

    A run in progress is finished before `stop()` returns (up to its timeout): stopping
    between two statements of a job would only leave work for the next run, but a clean
    stop keeps the logs' per-run counts whole.
    """

    def __init__(
        self,
        interval: float,
        run: Callable[[], object] = run_all_jobs,
        *,
        first_delay: float | None = None,
    ) -> None:
        self.interval = interval
        self.run = run
        self.first_delay = (
            min(interval, FIRST_RUN_AFTER_SECONDS) if first_delay is None else first_delay
        )
        self.runs = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> CleanupScheduler:
        if self.enabled and self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._loop, name="izgens-cleanup-schedule", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        self._stopping.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("cleanup run still in progress at shutdown; left to finish")

    def _loop(self) -> None:
        if self._stopping.wait(self.first_delay):
            return
        while not self._stopping.is_set():
            try:
                self.run()
            except Exception:  # noqa: BLE001 - a failed run is logged; the next one still comes
                logger.exception("scheduled cleanup run failed")
            self.runs += 1
            if self._stopping.wait(self.interval):
                return


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read (and so validate) the settings before serving, then run the cleanup schedule."""
    from anyio import to_thread

    from izgens.config import get_settings
    from izgens.logs import configure_logging, log_event

    settings = get_settings()
    configure_logging(settings.log_level)
    scheduler = CleanupScheduler(settings.cleanup_interval_seconds).start()
    app.state.cleanup_scheduler = scheduler
    log_event(logger, "container started", cleanup_interval_seconds=scheduler.interval)
    try:
        yield
    finally:
        from izgens.export_jobs import stop_worker

        await to_thread.run_sync(scheduler.stop)
        await to_thread.run_sync(stop_worker)


def load_function(name: str) -> Any:
    return importlib.import_module(f"izgens_functions.{name}.handler")


def create_container_app(functions: Iterable[str] = HTTP_FUNCTIONS) -> FastAPI:
    """Every HTTP function under `/{name}`, `/health`, and the lifespan that runs cleanup."""
    names = list(functions)
    container = create_app(
        "container",
        title="izgens",
        description="Every HTTP function under /<name>; each has its OpenAPI at /<name>/openapi.json.",
    )
    container.router.lifespan_context = _lifespan

    @container.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        """200 once the database answers: Railway routes traffic to a new deployment only
        after this, so a deployment with a wrong DATABASE_URL never replaces a working one."""
        from izgens.db import get_database

        get_database().one("select 1 as ok")
        return {"ok": True, "functions": names}

    for name in names:
        container.mount(f"/{name}", load_function(name).app)
    return container


app = create_container_app()
