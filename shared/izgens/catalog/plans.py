"""A request made concrete for the provider: the content and body fields it is sent with, and the tokens it is billed for."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from izgens.errors import InvalidRequest

if TYPE_CHECKING:
    from izgens.media import VideoInfo
from izgens.catalog.models import (
    ADAPTIVE,
    FPS,
    FRAMES,
    MAX_VIDEO_PIXELS,
    MIN_VIDEO_PIXELS,
    REFERENCE,
    ModelInfo,
    Size,
)
from izgens.catalog.specs import GenerationSpec, _Choice, _choose, normalize

__all__ = ["Plan", "Reference", "plan"]


class Reference(Protocol):
    """What planning needs of one checked upload (`izgens.storage.ReferenceInfo`)."""

    @property
    def kind(self) -> str: ...

    @property
    def video(self) -> VideoInfo | None: ...


def _frames_tokens(size: Size, frames: int) -> int:
    width, height = size
    return math.ceil(width * height * frames / 1024)


@dataclass(frozen=True, slots=True)
class Plan:
    """A request made concrete: what is sent to the provider and the tokens it bills.

    `output_tokens` counts the output's real frames (24 per second plus one). On 2.x every
    reference video is billed at the output's size for its own seconds too
    (`input_tokens`, each rounded up to whole frames plus one); SQL adds the provider's
    minimum for video input and the video-input price tier (`izgens.price_credits`).
    `adaptive` is priced at the largest size of its resolution, so no ratio the provider
    picks can cost more than was charged.
    """

    spec: GenerationSpec
    info: ModelInfo
    kinds: tuple[str, ...]
    output_tokens: int
    input_video_ms: int
    input_tokens: int

    def task_parameters(self) -> dict[str, Any]:
        """Body fields for create_task: only those the model supports, every one explicit
        (`generate_audio` too: the API's own default is True)."""
        spec, info = self.spec, self.info
        params: dict[str, Any] = {
            "resolution": spec.resolution,
            "ratio": spec.ratio,
            "duration": spec.duration,
            "watermark": False,
        }
        if info.supports_seed:
            params["seed"] = spec.seed
        if info.supports_camera_fixed:
            params["camera_fixed"] = spec.camera_fixed
        if info.supports_audio:
            params["generate_audio"] = spec.generate_audio
        return params

    def content(self, urls: Sequence[str]) -> list[dict[str, Any]]:
        """The BytePlus `content` array: the prompt, then each reference (in the request's
        order) with its role: in frames mode the first and last frame, in reference mode
        (2.x) `reference_image`s and `reference_video`s."""
        if len(urls) != len(self.kinds):
            raise ValueError("one URL per reference")
        items: list[dict[str, Any]] = [{"type": "text", "text": self.spec.prompt}]
        for index, (kind, url) in enumerate(zip(self.kinds, urls, strict=True)):
            key = "image_url" if kind == "image" else "video_url"
            if self.spec.mode == FRAMES:
                role = "first_frame" if index == 0 else "last_frame"
            else:
                role = self.info.references[kind].role
            items.append({"type": key, key: {"url": url}, "role": role})
        return items


def _check_references(choice: _Choice, references: Sequence[Reference]) -> int:
    """Refuse references the model cannot take; the reference videos' total milliseconds."""
    info = choice.info
    kinds = [ref.kind for ref in references]
    for kind in kinds:
        if kind not in ("image", "video"):
            raise InvalidRequest(f"unknown reference kind {kind!r}; use image or video")
        if choice.mode == FRAMES and kind != "image":
            raise InvalidRequest("the first and last frame must be images (mode 'frames')")
        if choice.mode == REFERENCE and kind not in info.references:
            raise InvalidRequest(f"{info.id} does not take {kind} references")
    if choice.mode == FRAMES and kinds and info.adaptive_only_with_video:
        if choice.ratio != ADAPTIVE:
            raise InvalidRequest(f"{info.id} needs ratio 'adaptive' from a first frame")
    for kind, rule in info.references.items():
        count = sum(1 for k in kinds if k == kind)
        if count > rule.max_count:
            raise InvalidRequest(f"{info.id} takes at most {rule.max_count} {kind} references")
    if info.adaptive_only_with_video and "video" in kinds and choice.ratio != ADAPTIVE:
        raise InvalidRequest(f"{info.id} needs ratio 'adaptive' when a reference video is given")
    shortest, longest = info.video_seconds
    total_ms = 0
    for ref in references:
        if ref.kind != "video":
            continue
        if ref.video is None:
            raise ValueError("a reference video was not checked")
        seconds = ref.video.duration_ms / 1000
        if not shortest <= seconds <= longest:
            raise InvalidRequest(
                f"each reference video must be {shortest}-{longest} seconds long for {info.id}"
                f" (one is {seconds:.2f} s)"
            )
        pixels = ref.video.width * ref.video.height
        if pixels and not MIN_VIDEO_PIXELS <= pixels <= MAX_VIDEO_PIXELS:
            raise InvalidRequest(
                f"reference videos must be 480p to 4K (one is {ref.video.width}x{ref.video.height})"
            )
        total_ms += ref.video.duration_ms
    if total_ms > info.video_total_seconds * 1000:
        raise InvalidRequest(
            f"the reference videos may last {info.video_total_seconds} seconds together on "
            f"{info.id} (these last {total_ms / 1000:.2f} s)"
        )
    return total_ms


def plan(spec: GenerationSpec, references: Sequence[Reference] = ()) -> Plan:
    """The request, its references (checked by the bucket, in `reference_keys` order) and
    the model, resolved into a `Plan`; `InvalidRequest` for anything the model cannot do."""
    if len(references) != len(spec.reference_keys):
        raise ValueError("one checked reference per reference key")
    choice = _choose(spec)
    input_ms = _check_references(choice, references)
    size = choice.info.sizes[choice.resolution][choice.ratio]
    input_frames = sum(
        math.ceil(FPS * ref.video.duration_ms / 1000) + 1
        for ref in references
        if ref.kind == "video" and ref.video is not None
    )
    return Plan(
        spec=normalize(spec),
        info=choice.info,
        kinds=tuple(ref.kind for ref in references),
        output_tokens=_frames_tokens(size, FPS * choice.duration + 1),
        input_video_ms=input_ms,
        input_tokens=_frames_tokens(size, input_frames) if input_frames else 0,
    )
