"""What the provider says about a task, applied: a callback (a hint, checked and re-read), a refresh, the copy of a finished video, completion."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING

from izgens import errors
from izgens.logs import log_event

if TYPE_CHECKING:
    from izgens.byteplus import Task
from izgens.generations.models import FINAL, MAX_VIDEO_BYTES, Generation
from izgens.generations.tokens import _generation_of, verify_callback_token

logger = logging.getLogger("izgens.generations")


class _Progress:
    """The provider's truth, applied."""

    def refresh(self, gen: Generation) -> Generation:
        """Ask the provider about an in-flight generation and apply what it says."""
        if gen.status not in ("submitted", "running") or not gen.provider_task_id:
            return gen
        try:
            task = self.provider.get_task(gen.provider_task_id)
        except errors.ProviderError as exc:
            log_event(
                logger,
                "provider read failed",
                logging.WARNING,
                generation=str(gen.id),
                error=exc.code,
            )
            return gen
        return self.apply(gen, task)

    def apply(self, gen: Generation, task: Task) -> Generation:
        """Move `gen` as far as the provider's task (read from the API) says."""
        if task.status in ("queued",):
            self.db.execute("select izgens.touch_generation(%s)", (gen.id,))
            return gen
        if task.status == "running":
            row = self.db.one("select * from izgens.mark_running(%s)", (gen.id,))
            return Generation.model_validate(row) if row else gen
        if task.status == "succeeded":
            return self.store(gen, task)
        code = task.error.code if task.error else task.status
        message = task.error.message if task.error else f"the provider reports {task.status}"
        if task.status == "cancelled" and gen.status in ("queued", "submitted"):
            row = self.db.one("select * from izgens.cancel_generation(%s, %s)", (gen.id, message))
        else:
            row = self._fail_row(gen.id, code, message)
        self._dispatch_freed_slot()
        return Generation.model_validate(row) if row else self._reload(gen.id)

    def store(self, gen: Generation, task: Task) -> Generation:
        """Exactly one caller copies the finished video into the bucket, then completes."""
        tokens = task.usage.completion_tokens if task.usage else None
        won = self.db.one("select * from izgens.claim_storing(%s, %s)", (gen.id, tokens))
        if won is None:
            return self._reload(gen.id)
        gen = Generation.model_validate(won)
        key = self.storage.video_key(gen.user_id, gen.id)
        if not task.video_url:
            return Generation.model_validate(
                self._fail_row(gen.id, "no_video", "the provider returned no video")
            )
        try:
            info = self.storage.copy_from_url(
                task.video_url,
                key,
                allowed_hosts=self.settings.byteplus_video_hosts,
                max_bytes=MAX_VIDEO_BYTES,
            )
        except errors.ProviderUnavailable as exc:
            # the lease runs out and reconciliation copies again
            log_event(
                logger,
                "video copy failed; will retry",
                logging.WARNING,
                generation=str(gen.id),
                error=exc.code,
            )
            return gen
        except errors.IzgensError as exc:
            log_event(
                logger, "video refused", logging.WARNING, generation=str(gen.id), error=exc.code
            )
            return Generation.model_validate(self._fail_row(gen.id, "video_refused", exc.detail))
        done = self.complete(gen.id, key, info.etag, info.size, info.content_type)
        self._dispatch_freed_slot()
        return done

    def complete(
        self, generation_id: uuid.UUID, key: str, etag: str, size: int, content_type: str
    ) -> Generation:
        row = self.db.one(
            "select * from izgens.complete_generation(%s, %s, %s, %s, %s)",
            (generation_id, key, etag, size, content_type),
        )
        assert row is not None
        gen = Generation.model_validate(row)
        if gen.deleted_at is not None:
            self.storage.delete(key)  # deleted by the user while it was being made
        return gen

    def _cancel_task(self, task_id: str) -> None:
        try:
            self.provider.delete_task(task_id)
        except errors.ProviderError as exc:
            log_event(
                logger,
                "could not cancel orphan task",
                logging.WARNING,
                task=task_id,
                error=exc.code,
            )

    def callback_generation(self, token: str) -> uuid.UUID:
        """The generation a provider callback's token names; `Unauthenticated` when forged.
        No I/O: checked before the callback's body is even read."""
        key = self.settings.callback_signing_key
        if not key:
            raise errors.NotConfigured(
                "provider callbacks are not configured (CALLBACK_SIGNING_KEY)"
            )
        return verify_callback_token(token, key.get_secret_value())

    def handle_callback(self, generation_id: uuid.UUID, task_id: str) -> None:
        """A provider callback (its token already checked): only a hint. Re-read the task
        from the API and apply what it says."""
        gen = self._reload(generation_id)
        if gen.status in FINAL and gen.provider_task_id == task_id:
            return  # a late or repeated callback: nothing left to learn
        task = self.provider.get_task(gen.provider_task_id or task_id)
        if _generation_of(task) != gen.id:
            raise errors.NotFound("the task does not belong to this generation")
        if gen.status == "queued":
            row = self.db.one("select * from izgens.mark_submitted(%s, %s)", (gen.id, task.id))
            gen = Generation.model_validate(row)
        if gen.status in ("submitted", "running"):
            after = self.apply(gen, task)
            if gen.status == "submitted" and after.status == "running":
                # it left the provider's queue: room for the next one (here, not in apply:
                # a status read stays at its two round trips; the job dispatches as well)
                self._dispatch_freed_slot()
        elif gen.status in ("failed", "canceled") and task.id != gen.provider_task_id:
            self._orphan(gen, task)

    def _orphan(self, gen: Generation, task: Task) -> None:
        """A task whose create looked lost, for a generation already failed (and refunded) or
        canceled: cancel it while the provider still allows (queued), else just log it."""
        log_event(
            logger,
            "orphan provider task for an ended generation",
            logging.WARNING,
            generation=str(gen.id),
            task=task.id,
            task_status=task.status,
        )
        if task.status == "queued":
            self._cancel_task(task.id)
