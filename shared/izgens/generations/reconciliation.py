"""The cleanup job's part: stuck generations driven to a final state with the provider's truth, waiting ones failed after the limit, ended ones' reference copies deleted."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from izgens import errors
from izgens.logs import log_event

if TYPE_CHECKING:
    from izgens.byteplus import Task
from izgens.generations.models import (
    GIVE_UP_AFTER_SECONDS,
    UNCERTAIN_SUBMIT_WINDOW_SECONDS,
    Generation,
)
from izgens.generations.tokens import _generation_of

logger = logging.getLogger("izgens.generations")


class _Reconciliation:
    """Reconciliation."""

    def delete_inputs(self, limit: int = 500) -> dict[str, int]:
        """Delete the reference copies of generations that have ended (no task can fetch
        them any more). Bounded by `limit` generations a run."""
        rows = self.db.all("select * from izgens.inputs_to_delete(%s)", (limit,))
        keys = [
            self.storage.input_key(row["user_id"], row["id"], index, key)
            for row in rows
            for index, key in enumerate(row["reference_keys"])
        ]
        deleted = self.storage.delete_keys(keys)
        if rows:
            self.db.one("select izgens.inputs_deleted(%s) as n", ([row["id"] for row in rows],))
        return {"generations": len(rows), "objects": deleted}

    def reconcile(self, *, older_than_seconds: int = 60, limit: int = 100) -> dict[str, int]:
        """Drive stuck generations to a final state with the provider's truth. Bounded."""
        counts = {
            "checked": 0,
            "found_orphan": 0,
            "failed_unsubmitted": 0,
            "failed_expired": 0,
            "failed_waiting": 0,
            "errors": 0,
            "dispatched": 0,
        }
        rows = self.db.all(
            "select * from izgens.stuck_generations(%s, %s)", (older_than_seconds, limit)
        )
        for row in rows:
            gen = Generation.model_validate(row)
            counts["checked"] += 1
            try:
                if gen.status == "queued":
                    counts[self._reconcile_unsubmitted(gen)] += 1
                elif self._beyond_recovery(gen):
                    log_event(
                        logger,
                        "in flight past the provider's limits; failing with refund",
                        logging.WARNING,
                        generation=str(gen.id),
                        status=gen.status,
                    )
                    self.fail(gen.id, "video_unavailable", "the video is no longer available")
                    counts["failed_expired"] += 1
                elif gen.status == "storing":
                    if gen.provider_task_id:
                        self.store(gen, self.provider.get_task(gen.provider_task_id))
                else:
                    self.refresh(gen)
            except (errors.InvalidTransition, errors.NotFound) as exc:
                # moved on (or deleted) meanwhile by another path: nothing is wrong
                log_event(logger, "reconcile step raced", generation=str(gen.id), error=exc.code)
            except errors.IzgensError as exc:
                counts["errors"] += 1  # the provider or the bucket failed: alarmed on
                log_event(
                    logger,
                    "reconcile step failed",
                    logging.WARNING,
                    generation=str(gen.id),
                    error=exc.code,
                )
        counts["failed_waiting"] = self.fail_waiting(limit)
        counts["dispatched"] = self.dispatch(limit)
        return counts

    def fail_waiting(self, limit: int) -> int:
        """Generations that waited for provider capacity longer than
        GENERATION_MAX_WAIT_MINUTES (the provider refusing for hours, a used-up quota):
        failed with `capacity_timeout` and refunded exactly once, oldest first, before the
        dispatcher would send them. One SQL call."""
        rows = self.db.all(
            "select id from izgens.fail_waiting_generations(%s, %s)",
            (self.settings.generation_max_wait_minutes * 60, limit),
        )
        for row in rows:
            log_event(
                logger,
                "waited too long for provider capacity; failed with refund",
                logging.WARNING,
                generation=str(row["id"]),
            )
        return len(rows)

    @staticmethod
    def _beyond_recovery(gen: Generation) -> bool:
        """Submitted longer ago than the provider runs a task plus keeps its video."""
        since = gen.submitted_at or gen.created_at
        return (datetime.now(since.tzinfo) - since).total_seconds() > GIVE_UP_AFTER_SECONDS

    def _reconcile_unsubmitted(self, gen: Generation) -> str:
        """A create whose answer was lost (timeout, 5xx, crash): find its task, else fail."""
        task = self._find_task(gen)
        if task is not None:
            self.db.one("select * from izgens.mark_submitted(%s, %s)", (gen.id, task.id))
            self.refresh(self._reload(gen.id))
            return "found_orphan"
        attempted = gen.submit_attempted_at or gen.created_at
        age = (datetime.now(attempted.tzinfo) - attempted).total_seconds()
        if age < UNCERTAIN_SUBMIT_WINDOW_SECONDS:
            return "checked"
        log_event(
            logger,
            "create outcome unknown and no task found; failing with refund",
            logging.WARNING,
            generation=str(gen.id),
        )
        self.fail(gen.id, "submission_failed", "the video service did not accept the request")
        return "failed_unsubmitted"

    def _find_task(self, gen: Generation) -> Task | None:
        for page in range(1, 6):
            listing = self.provider.list_tasks(page_num=page, page_size=100, model=gen.model)
            for task in listing.items:
                if _generation_of(task) == gen.id:
                    return task
            if page * 100 >= listing.total:
                break
        return None
