"""A create request checked as the provider checks it, against the model catalog
(`izgens.catalog`), with the provider's defaults applied."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from izgens.catalog import ADAPTIVE, ModelInfo
from izgens_local.byteplus_sim.errors import invalid, missing

MAX_SEED = 2_147_483_647


def _opt_bool(body: Mapping[str, Any], key: str) -> bool | None:
    value = body.get(key)
    if value is not None and not isinstance(value, bool):
        raise invalid(key, "expected a boolean")
    return value


def _opt_int(body: Mapping[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
        raise invalid(key, "expected an integer")
    return value


def _opt_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise invalid(key, "expected a string")
    return value


@dataclass
class Content:
    prompt: str = ""
    first_frame: int = 0
    last_frame: int = 0
    reference_images: int = 0
    videos: int = 0
    audios: int = 0
    draft_task: bool = False
    text_index: int = 0
    image_index: int | None = None
    video_index: int | None = None
    video_urls: list[tuple[int, str]] = field(default_factory=list)


def _url_of(item: Mapping[str, Any], key: str, index: int) -> None:
    inner = item.get(key)
    url = inner.get("url") if isinstance(inner, Mapping) else None
    if not isinstance(url, str) or not url:
        raise missing(f"content[{index}].{key}.url")


def _parse_content(raw: Any, info: ModelInfo) -> Content:
    if raw is None or raw == []:
        raise missing("content")
    if not isinstance(raw, list):
        raise invalid("content", "expected an array")
    found = Content()
    texts = 0
    for i, item in enumerate(raw):
        where = f"content[{i}]"
        if not isinstance(item, Mapping):
            raise invalid(where, "expected an object")
        kind, role = item.get("type"), item.get("role")
        if kind == "text":
            text = item.get("text")
            if not isinstance(text, str):
                raise missing(f"{where}.text")
            texts += 1
            found.prompt, found.text_index = text, i
        elif kind == "image_url":
            _url_of(item, "image_url", i)
            found.image_index = i if found.image_index is None else found.image_index
            if role in (None, "first_frame"):
                found.first_frame += 1
            elif role == "last_frame":
                found.last_frame += 1
            elif role == "reference_image":
                if "image" not in info.references:
                    raise invalid(f"{where}.role", f"reference_image is not supported by {info.id}")
                found.reference_images += 1
            else:
                raise invalid(f"{where}.role", f"unknown role {role!r}")
        elif kind in ("video_url", "audio_url"):
            _url_of(item, kind, i)
            expected = "reference_video" if kind == "video_url" else "reference_audio"
            if role not in (None, expected):
                raise invalid(f"{where}.role", f"unknown role {role!r}")
            if info.major < 2:
                raise invalid(f"{where}.type", f"{kind} is not supported by {info.id}")
            if kind == "video_url":
                found.videos += 1
                found.video_index = i if found.video_index is None else found.video_index
                found.video_urls.append((i, item["video_url"]["url"]))
            else:
                found.audios += 1
        elif kind == "draft_task":
            draft = item.get("draft_task")
            if not info.supports_draft:
                raise invalid(f"{where}.type", f"draft_task is not supported by {info.id}")
            if not isinstance(draft, Mapping) or not isinstance(draft.get("id"), str):
                raise missing(f"{where}.draft_task.id")
            found.draft_task = True
        else:
            raise invalid(f"{where}.type", f"unknown content type {kind!r}")
    if texts > 1:
        raise invalid("content", "at most one text item is allowed")
    _check_modes(found, info)
    return found


def _check_modes(found: Content, info: ModelInfo) -> None:
    frames = found.first_frame + found.last_frame
    multimodal = found.reference_images + found.videos + found.audios
    if frames and multimodal:
        raise invalid("content", "first-frame, first/last-frame and reference modes are exclusive")
    if found.first_frame > 1 or found.last_frame > 1:
        raise invalid("content", "at most one first frame and one last frame are allowed")
    if found.last_frame and not found.first_frame:
        raise invalid("content", "a last frame needs a first frame")
    if found.last_frame and not info.supports_last_frame:
        raise invalid("content", f"first/last-frame mode is not supported by {info.id}")
    image_rule = info.references.get("image")
    if image_rule and found.reference_images > image_rule.max_count:
        raise invalid("content", f"at most {image_rule.max_count} reference images are allowed")
    video_rule = info.references.get("video")
    if video_rule and found.videos > video_rule.max_count:
        raise invalid("content", f"at most {video_rule.max_count} reference videos are allowed")
    if found.audios > info.max_reference_audios:
        raise invalid("content", f"at most {info.max_reference_audios} reference audios")
    only_audio = found.audios and not (found.reference_images or found.videos)
    if only_audio and not info.adaptive_only_with_video:  # 2.5 alone takes audio-only
        raise invalid("content", "reference audio needs a reference image or video")
    if not (found.prompt or frames or multimodal or found.draft_task):
        raise missing("content")


@dataclass
class Accepted:
    """A validated create body, with the provider's defaults applied."""

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
    callback_url: str | None
    content: Content


def validate(body: Mapping[str, Any], info: ModelInfo) -> Accepted:
    content = _parse_content(body.get("content"), info)
    image_led = bool(content.first_frame)

    draft = bool(_opt_bool(body, "draft"))
    if draft and not info.supports_draft:
        raise invalid("draft", f"draft is not supported by {info.id}")

    resolution = _opt_str(body, "resolution") or ("480p" if draft else info.default_resolution)
    if resolution not in info.resolutions or (draft and resolution != "480p"):
        raise invalid("resolution", f"{resolution} is not supported by {info.id}")

    ratio = _opt_str(body, "ratio") or info.default_ratio(with_image=image_led)
    if ratio not in info.ratios:
        raise invalid("ratio", f"{ratio} is not supported by {info.id}")
    if ratio == ADAPTIVE and not image_led and not info.adaptive_text_only:
        raise invalid("ratio", f"adaptive needs a first-frame image on {info.id}")
    if info.adaptive_only_with_video and (content.videos or image_led) and ratio != ADAPTIVE:
        raise invalid("ratio", f"only adaptive is supported for this task type on {info.id}")

    frames = _opt_int(body, "frames")
    if frames is not None:
        if not info.supports_frames:
            raise invalid("frames", f"frames is not supported by {info.id}")
        if not (29 <= frames <= 289 and (frames - 25) % 4 == 0):
            raise invalid("frames", "frames must be 25+4n within [29, 289]")
    duration = _opt_int(body, "duration")
    low, high = info.duration_range
    if duration is None:
        duration = info.api_default_duration
    elif duration == -1:
        if not info.auto_duration:
            raise invalid("duration", f"-1 is not supported by {info.id}")
    elif not low <= duration <= high:
        raise invalid("duration", f"duration must be within [{low}, {high}] for {info.id}")
    if duration == -1:
        duration = min(max(5, low), high)  # the "model" picks a length
    if frames is not None:
        duration = None

    seed = _opt_int(body, "seed")
    if seed is not None and not -1 <= seed <= MAX_SEED:
        raise invalid("seed", f"seed must be within [-1, {MAX_SEED}]")
    if seed not in (None, -1) and not info.supports_seed:
        raise invalid("seed", f"seed is not supported by {info.id}")
    if seed in (None, -1):
        seed = secrets.randbelow(MAX_SEED)

    if _opt_bool(body, "camera_fixed") and not info.supports_camera_fixed:
        raise invalid("camera_fixed", f"camera_fixed is not supported by {info.id}")
    audio = _opt_bool(body, "generate_audio")
    if audio and not info.supports_audio:
        raise invalid("generate_audio", f"generate_audio is not supported by {info.id}")
    generate_audio = info.supports_audio if audio is None else audio
    _opt_bool(body, "watermark")

    return_last_frame = bool(_opt_bool(body, "return_last_frame"))
    if return_last_frame and draft:
        raise invalid("return_last_frame", "return_last_frame is not supported with draft")

    tier = _opt_str(body, "service_tier") or "default"
    if tier not in ("default", "flex"):
        raise invalid("service_tier", "service_tier must be default or flex")
    if tier == "flex" and (not info.supports_flex or draft):
        raise invalid("service_tier", f"flex is not supported by {info.id} in this mode")

    expires = _opt_int(body, "execution_expires_after")
    if expires is not None and not 3600 <= expires <= 259200:
        raise invalid("execution_expires_after", "must be within [3600, 259200]")

    priority = _opt_int(body, "priority")
    if priority is not None and not 0 <= priority <= 9:
        raise invalid("priority", "priority must be within [0, 9]")
    if priority and (not info.supports_priority or tier == "flex"):
        raise invalid("priority", f"priority is not supported by {info.id} in this mode")

    safety = _opt_str(body, "safety_identifier")
    if safety is not None and len(safety) > 64:
        raise invalid("safety_identifier", "at most 64 characters")

    output_format = _opt_str(body, "output_format")
    if output_format is not None and output_format not in info.output_formats:
        raise invalid("output_format", f"{output_format} is not supported by {info.id}")

    callback_url = _opt_str(body, "callback_url")
    if callback_url is not None:
        parts = urlsplit(callback_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise invalid("callback_url", "expected an http(s) URL")

    if ratio == ADAPTIVE:
        ratio = "16:9"  # the ratio the "model" picked, as the real task shows it
    return Accepted(
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        frames=frames,
        seed=seed,
        generate_audio=generate_audio,
        draft=draft,
        service_tier=tier,
        execution_expires_after=expires or 172800,
        priority=priority or 0,
        safety_identifier=safety,
        return_last_frame=return_last_frame,
        callback_url=callback_url or None,
        content=content,
    )
