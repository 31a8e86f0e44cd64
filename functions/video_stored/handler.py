"""The `video_stored` function: S3 ObjectCreated events for `videos/` complete generations.

Events arrive at least once, out of order, several records at a time (and moto sends two
per multipart upload): every step is idempotent. Unknown keys are logged and ignored.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from izgens.logs import configure_logging, log_event

logger = logging.getLogger("izgens.video_stored")


def handle_event(event: dict[str, Any]) -> dict[str, int]:
    from izgens import errors
    from izgens.generations import Lifecycle
    from izgens.storage import Storage

    life = Lifecycle.from_settings()
    counts = {"completed": 0, "ignored": 0, "discarded": 0}
    for record in Storage.iter_object_created(event):
        parsed = Storage.parse_video_key(record.key)
        if parsed is None:
            log_event(logger, "not a video key; ignored", key_length=len(record.key))
            counts["ignored"] += 1
            continue
        _, generation_id = parsed
        info = life.storage.head(record.key)
        if info is None:
            counts["ignored"] += 1  # deleted since: nothing to record
            continue
        try:
            life.complete(
                uuid.UUID(generation_id), record.key, info.etag, info.size, info.content_type
            )
            counts["completed"] += 1
        except errors.NotFound:
            life.storage.delete(record.key)  # its generation (or account) is gone
            counts["discarded"] += 1
        except errors.InvalidTransition as exc:
            log_event(
                logger,
                "video for a generation that cannot complete",
                generation=generation_id,
                state=exc.current,
            )
            counts["ignored"] += 1
    log_event(logger, "video events handled", **counts)
    return counts


def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    configure_logging()
    return handle_event(event)
