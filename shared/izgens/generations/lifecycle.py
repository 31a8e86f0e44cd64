"""The Lifecycle class: its collaborators, reads, the user's delete and the shared failure and cancel transitions."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from izgens import errors
from izgens.clients import Shared
from izgens.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from izgens.byteplus import BytePlusClient
    from izgens.config import Settings
    from izgens.db import Database
    from izgens.storage import Storage
from izgens.generations.admission import _Admission
from izgens.generations.models import (
    REFRESH_AFTER_SECONDS,
    Generation,
    GenerationError,
    GenerationView,
)
from izgens.generations.progress import _Progress
from izgens.generations.reconciliation import _Reconciliation

__all__ = ["Lifecycle"]

logger = logging.getLogger("izgens.generations")


def _build_provider() -> BytePlusClient:
    from izgens.byteplus import BytePlusClient
    from izgens.config import get_settings

    settings = get_settings()
    if not settings.byteplus_api_key:
        raise errors.NotConfigured("the video service is not configured (BYTEPLUS_API_KEY)")
    return BytePlusClient(
        settings.byteplus_base_url,
        settings.byteplus_api_key.get_secret_value(),
        timeout=settings.byteplus_timeout_seconds,
    )


# one provider client per warm container: its connection pool is reused
provider_client = Shared("byteplus", _build_provider, close=lambda client: client.close())
reset_provider = provider_client.reset


class Lifecycle(_Admission, _Progress, _Reconciliation):
    """The transitions, with their collaborators injected (tests pass their own)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage | None = None,
        provider: BytePlusClient | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._storage = storage
        self._provider = provider

    @classmethod
    def from_settings(cls) -> Lifecycle:
        """Collaborators from settings; the bucket and the provider client (and their
        imports: boto3, httpx) are only built when a request first needs them."""
        from izgens.config import get_settings
        from izgens.db import get_database

        return cls(get_settings(), get_database())

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from izgens.storage import get_storage

            self._storage = get_storage()
        return self._storage

    @property
    def provider(self) -> BytePlusClient:
        if self._provider is None:
            self._provider = provider_client.get()
        return self._provider

    def get(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
        """The caller's generation: `NotFound` for anyone else's, `Unauthenticated` once
        the caller is gone (purged). One round trip."""
        row = self.db.one("select * from izgens.user_generation(%s, %s)", (user_id, generation_id))
        if row is None:
            raise errors.NotFound("no such generation")
        return Generation.model_validate(row)

    def read(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> GenerationView:
        """A status read: the row (one SQL); the provider is asked only about one in flight
        that was not checked in the last REFRESH_AFTER_SECONDS."""
        gen = self.get(user_id, generation_id)
        checked = gen.checked_at or gen.updated_at
        age = (datetime.now(checked.tzinfo) - checked).total_seconds()
        if gen.status in ("submitted", "running") and age > REFRESH_AFTER_SECONDS:
            gen = self.refresh(gen)
        return self.view(gen)

    def history(
        self, user_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[GenerationView]:
        after = decode_cursor(cursor, (datetime, uuid.UUID))
        rows = self.db.all(
            "select * from izgens.generations_page(%s, %s, %s, %s)",
            (user_id, after[0] if after else None, after[1] if after else None, limit + 1),
        )
        gens = [Generation.model_validate(r) for r in rows[:limit]]
        next_cursor = encode_cursor(gens[-1].created_at, gens[-1].id) if len(rows) > limit else None
        return Page[GenerationView](items=[self.view(g) for g in gens], next_cursor=next_cursor)

    def view(self, gen: Generation) -> GenerationView:
        video_url = None
        if gen.status == "completed" and gen.video_key:
            video_url = self.storage.presigned_get(
                gen.video_key, self.settings.video_link_seconds, filename=f"izgens-{gen.id}.mp4"
            )
        error = (
            GenerationError(code=gen.error_code, message=gen.error_message)
            if gen.error_code
            else None
        )
        return GenerationView(
            id=gen.id,
            status=gen.status,
            prompt=gen.prompt,
            model=gen.model,
            resolution=gen.resolution,
            ratio=gen.ratio,
            duration=gen.duration,
            seed=gen.seed,
            camera_fixed=gen.camera_fixed,
            generate_audio=gen.generate_audio,
            reference_keys=list(gen.reference_keys),
            reference_mode=gen.reference_mode,
            cost=gen.cost,
            video_url=video_url,
            error=error,
            created_at=gen.created_at,
            completed_at=gen.completed_at,
            recreated_from=gen.recreated_from,
        )

    def fail(self, generation_id: uuid.UUID, code: str, message: str) -> bool:
        """Fail and refund; False when the generation had already moved past failing."""
        try:
            self._fail_row(generation_id, code, message)
        except errors.InvalidTransition:
            return False
        return True

    def _fail_row(self, generation_id: uuid.UUID, code: str, message: str) -> dict[str, Any] | None:
        return self.db.one(
            "select * from izgens.fail_generation(%s, %s, %s)", (generation_id, code, message)
        )

    def _reload(self, generation_id: uuid.UUID) -> Generation:
        row = self.db.one("select * from public.generations where id = %s", (generation_id,))
        if row is None:
            raise errors.NotFound("no such generation")
        return Generation.model_validate(row)

    def delete(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> None:
        """Delete and forget: the prompt and parameters are erased in the same SQL call
        (`forget_generation`), the video and the references no other generation uses go
        now; an unstarted task is canceled and refunded, a running one is left to finish
        and its video deleted when it lands."""
        try:
            row = self.db.one(
                "select izgens.forget_generation(%s, %s) as r", (user_id, generation_id)
            )
        except errors.NotFound:
            # a purged account has no generations left either: it is signed out
            self.db.one("select izgens.require_user(%s) as caller", (user_id,))
            raise
        assert row is not None
        gen = Generation.model_validate(row["r"]["generation"])
        if gen.video_key:
            self.storage.delete(gen.video_key)
        references: list[str] = row["r"]["references"]
        if references:  # a failure here leaves them to the `references` retention job
            self.storage.delete_keys(references)
            self.db.one("select izgens.drop_reference_rows(%s) as n", (references,))
        # the generation's own copies of its references (the keys that named them are
        # erased now, so the `inputs` job would never find them)
        self.storage.delete_prefix(f"inputs/{gen.user_id}/{gen.id}/")
        if gen.status == "queued":
            self._try_cancel(gen)
        elif gen.status == "submitted" and gen.provider_task_id:
            try:
                self.provider.delete_task(gen.provider_task_id)
            except errors.ProviderError:
                return  # already running: it finishes, then the video is discarded
            self._try_cancel(gen)

    def _try_cancel(self, gen: Generation) -> None:
        try:
            self.db.one(
                "select * from izgens.cancel_generation(%s, 'deleted by the user')", (gen.id,)
            )
        except errors.InvalidTransition:
            return
