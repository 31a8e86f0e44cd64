"""A generation as stored and as shown, and the timing rules of its lifecycle."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

if TYPE_CHECKING:
    from izgens import catalog

__all__ = ["Generation", "GenerationView"]

IN_FLIGHT = ("queued", "submitted", "running", "storing")

FINAL = ("completed", "failed", "canceled")

REFRESH_AFTER_SECONDS = 5

# how long the provider may run a task; reference URLs must stay valid as long
TASK_EXPIRES_AFTER = 6 * 3600

MAX_VIDEO_BYTES = 2 * 1024**3

# an ambiguous create (timeout, 5xx, crash) is looked for in the provider's list this long
# before the generation is failed and refunded
UNCERTAIN_SUBMIT_WINDOW_SECONDS = 300

# BytePlus serves a finished task's video for 24 hours: past the task's own expiry and
# that, nothing can deliver the video of a generation still in flight (a copy failing for
# a day, a provider unreadable for a day); it is failed and refunded instead of retried
VIDEO_URL_LIFETIME = 24 * 3600

GIVE_UP_AFTER_SECONDS = TASK_EXPIRES_AFTER + VIDEO_URL_LIFETIME


class Generation(BaseModel):
    """A row of public.generations."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    prompt: str | None  # None once deleted (erased by `forget_generation`)
    model: str
    resolution: str
    ratio: str | None
    duration: int
    seed: int | None = None
    camera_fixed: bool | None = None
    generate_audio: bool | None = None
    reference_keys: list[str] = []
    reference_mode: str | None = None
    cost: int
    input_video_ms: int = 0
    provider_tokens: int | None = None
    provider_task_id: str | None = None
    video_key: str | None = None
    bytes: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    recreated_from: uuid.UUID | None = None
    submit_lease_until: datetime | None = None
    submit_attempted_at: datetime | None = None
    submit_attempts: int = 0
    submitted_at: datetime | None = None
    checked_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def spec(self) -> catalog.GenerationSpec:
        from izgens import catalog

        return catalog.GenerationSpec(
            prompt=self.prompt,
            model=self.model,
            resolution=self.resolution,
            ratio=self.ratio,
            duration=self.duration,
            seed=self.seed,
            camera_fixed=self.camera_fixed,
            generate_audio=self.generate_audio,
            reference_keys=list(self.reference_keys),
            mode=self.reference_mode,
        )


class GenerationError(BaseModel):
    code: str
    message: str | None = None


class GenerationView(BaseModel):
    """A generation as the user sees it."""

    id: uuid.UUID
    status: str
    prompt: str
    model: str
    resolution: str
    ratio: str
    duration: int
    seed: int | None
    camera_fixed: bool | None
    generate_audio: bool | None
    reference_keys: list[str]
    reference_mode: str | None = None
    cost: int
    video_url: str | None = None
    error: GenerationError | None = None
    created_at: datetime
    completed_at: datetime | None = None
    recreated_from: uuid.UUID | None = None
