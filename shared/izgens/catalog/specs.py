"""A generation request as the user states it, and its normalisation against its model: every value concrete, anything the model cannot do refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from izgens.errors import InvalidRequest

if TYPE_CHECKING:
    pass
from izgens.catalog.models import (
    ADAPTIVE,
    DEFAULT_MODEL,
    FRAMES,
    MAX_SEED,
    RATIOS,
    Mode,
    ModelInfo,
    _choices,
    get_model,
)
from izgens.catalog.prompts import text_command

__all__ = ["GenerationSpec", "MAX_PROMPT_CHARS", "MAX_REFERENCES", "normalize"]

MAX_PROMPT_CHARS = 4000

MAX_REFERENCES = 9


class GenerationSpec(BaseModel):
    """A generation request as the user states it; `normalize()` fills and checks it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    prompt: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_PROMPT_CHARS)
    ]
    model: str | None = None
    resolution: str | None = None
    ratio: str | None = None
    duration: int | None = None
    seed: Annotated[int, Field(ge=-1, le=MAX_SEED)] | None = None
    camera_fixed: bool | None = None
    generate_audio: bool | None = None
    reference_keys: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=1024)]],
        Field(max_length=MAX_REFERENCES),
    ] = []
    # how the references are used: `frames` (first, last) or `reference` (2.x); the
    # model's default when unset
    mode: Mode | None = None


@dataclass(frozen=True, slots=True)
class _Choice:
    """A spec resolved against its model: every value concrete."""

    info: ModelInfo
    mode: Mode
    resolution: str
    ratio: str
    duration: int
    seed: int | None
    camera_fixed: bool
    generate_audio: bool


def _choose(spec: GenerationSpec) -> _Choice:
    info = get_model(spec.model or DEFAULT_MODEL)
    command = text_command(spec.prompt)
    if command is not None:
        raise InvalidRequest(
            f"the prompt must not contain parameter flags such as --duration or --resolution "
            f"(found {command!r}); use the request fields instead"
        )

    refs = spec.reference_keys
    mode = spec.mode or info.default_mode
    if mode not in info.modes:
        raise InvalidRequest(
            f"{info.id} takes images as the first and last frame only (mode 'frames')"
        )
    most = (
        info.max_frames
        if mode == FRAMES
        else sum(rule.max_count for rule in info.references.values())
    )
    if len(refs) > most:
        if mode == FRAMES:
            frames = "a first and a last frame" if most == 2 else "one image (the first frame)"
            raise InvalidRequest(f"{info.id} takes at most {frames}")
        raise InvalidRequest(f"{info.id} takes at most {most} references")

    resolution = spec.resolution or info.default_resolution
    if resolution not in info.resolutions:
        raise InvalidRequest(
            f"resolution {resolution!r} is not supported by {info.id}; "
            f"choose one of {_choices(info.resolutions)}"
        )

    ratio = spec.ratio or info.default_ratio(with_image=bool(refs))
    if ratio not in info.ratios:
        raise InvalidRequest(
            f"ratio {ratio!r} is not supported by {info.id}; choose one of {_choices(info.ratios)}"
        )
    if ratio == ADAPTIVE and not refs and not info.adaptive_text_only:
        raise InvalidRequest(
            f"ratio 'adaptive' needs a reference image on {info.id}; "
            f"choose one of {_choices(RATIOS)}"
        )

    low, high = info.duration_range
    duration = info.default_duration if spec.duration is None else spec.duration
    if duration == -1:
        raise InvalidRequest(
            "duration -1 (the model picks the length) is not offered: prices are fixed up front; "
            f"choose {low}-{high} seconds"
        )
    if not low <= duration <= high:
        raise InvalidRequest(f"duration must be {low}-{high} seconds for {info.id}")

    seed = spec.seed
    if info.supports_seed:
        seed = -1 if seed is None else seed
    elif seed is not None:
        raise InvalidRequest(f"seed is not supported by {info.id}")

    if spec.camera_fixed and not info.supports_camera_fixed:
        raise InvalidRequest(f"camera_fixed is not supported by {info.id}")
    if spec.generate_audio and not info.supports_audio:
        raise InvalidRequest(f"generate_audio is not supported by {info.id}")

    return _Choice(
        info=info,
        mode=mode,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        seed=seed,
        camera_fixed=bool(spec.camera_fixed),
        generate_audio=bool(spec.generate_audio),
    )


def normalize(spec: GenerationSpec) -> GenerationSpec:
    """Fill the model's defaults; refuse what the model cannot do, before any money moves.

    Idempotent: a normalized spec comes back equal. Switches a model lacks are accepted
    when off (`generate_audio=False` on 1.0) and refused when on. A model without seeds
    keeps `seed=None`; one with seeds gets -1 (random) unless a seed was given.
    """
    choice = _choose(spec)
    return spec.model_copy(
        update={
            "model": choice.info.id,
            "mode": choice.mode,
            "resolution": choice.resolution,
            "ratio": choice.ratio,
            "duration": choice.duration,
            "seed": choice.seed,
            "camera_fixed": choice.camera_fixed,
            "generate_audio": choice.generate_audio,
        }
    )
