"""What a simulator is configured with, and what it holds for each task."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from izgens.catalog import FPS, ModelInfo


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
class Callback:
    task_id: str
    url: str
    status: str
    body: dict[str, Any]
