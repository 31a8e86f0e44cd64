"""Who builds a requested export, so that `POST /privacy/exports` never does.

    EXPORT_BUILDER_FUNCTION set (AWS)   an asynchronous invocation of that Lambda (the
                                        `privacy_export` function's `live` alias), event
                                        {"job": "build_export", "export_id": ...}
    unset (dev stack, container, tests) a worker thread of this process, started on the
                                        first export and stopped with the process

Either way a hand-off can be lost (a throttled or failed invocation, a process that dies
mid-build): the export then stays `pending` or `building` with a lease, and the `cleanup`
job's `exports` run builds whatever is claimable. Builders claim exports in SQL
(`izgens.claim_export`), so two never build the same one.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import uuid
from typing import Any

from izgens.clients import Shared
from izgens.logs import log_event

__all__ = ["EVENT_JOB", "ExportWorker", "dispatch", "handle_job", "stop_worker"]

logger = logging.getLogger("izgens.export_jobs")

EVENT_JOB = "build_export"
STOP_TIMEOUT_SECONDS = 25.0


def dispatch(export_id: uuid.UUID) -> None:
    from izgens.config import get_settings

    function = get_settings().export_builder_function
    if function:
        _invoke(function, export_id)
    else:
        _worker().submit(export_id)


def handle_job(event: dict[str, Any]) -> dict[str, Any]:
    """The asynchronous invocation's work: build that export (if still claimable)."""
    from izgens.privacy import Privacy

    export_id = uuid.UUID(str(event["export_id"]))
    built = Privacy.from_settings().build_export(export_id)
    return {"export_id": str(export_id), "built": built}


# -- AWS: an asynchronous Lambda invocation ------------------------------------------------


def _build_lambda() -> Any:
    import boto3
    from botocore.config import Config

    from izgens.config import get_settings

    config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 2})
    return boto3.client("lambda", region_name=get_settings().aws_region, config=config)


lambda_client = Shared("lambda", _build_lambda)


def _invoke(function: str, export_id: uuid.UUID) -> None:
    """InvocationType=Event: Lambda queues it and answers 202 at once (retries and the
    failure destination are the function's EventInvokeConfig)."""
    from botocore.exceptions import BotoCoreError, ClientError

    payload = json.dumps({"job": EVENT_JOB, "export_id": str(export_id)}).encode()
    try:
        lambda_client.get().invoke(FunctionName=function, InvocationType="Event", Payload=payload)
    except (BotoCoreError, ClientError) as exc:
        log_event(
            logger,
            "export hand-off failed; cleanup builds it",
            logging.WARNING,
            export=str(export_id),
            error=type(exc).__name__,
        )


# -- dev stack and container: a worker thread ----------------------------------------------


class ExportWorker:
    """Builds submitted exports one at a time on a daemon thread, in arrival order."""

    def __init__(self) -> None:
        self._queue: queue.Queue[uuid.UUID | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="izgens-exports", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def submit(self, export_id: uuid.UUID) -> None:
        self._queue.put(export_id)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Finish the build in progress, drop the rest (cleanup builds them later)."""
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        from izgens.privacy import Privacy

        while (export_id := self._queue.get()) is not None:
            try:
                Privacy.from_settings().build_export(export_id)
            except Exception:  # noqa: BLE001 - one failed build must not stop the worker
                # the export keeps its lease; cleanup takes it once the lease has run out
                logger.exception(
                    "export build failed", extra={"fields": {"export": str(export_id)}}
                )


_worker_instance: ExportWorker | None = None
_worker_lock = threading.Lock()


def _worker() -> ExportWorker:
    global _worker_instance
    with _worker_lock:
        if _worker_instance is None or not _worker_instance.alive:
            _worker_instance = ExportWorker()
        return _worker_instance


def stop_worker() -> None:
    """At shutdown (the container's lifespan, the dev stack): let a build in progress end."""
    global _worker_instance
    with _worker_lock:
        worker, _worker_instance = _worker_instance, None
    if worker is not None:
        worker.stop()
