"""The Seedance model catalog and the one place a generation request is checked against it.

Facts come from `reference/byteplus-seedance.md` §2 (model ids, resolutions, ratios, durations,
pixel sizes, reference roles). Our own policies sit on top of those facts:

- `duration=-1` ("the model picks the length, billing follows") is never offered: prices are
  fixed up front, before any money moves, so every generation has a known length.
- `generate_audio` defaults to False (the API defaults to True) to keep prices low, and is
  always sent explicitly for the models that support it.
- Legacy text commands in the prompt (`--resolution 1080p`, `--dur 12`, …) are refused: the
  provider may honour them over the body fields, which would let a prompt buy a longer or
  sharper video than the one that was priced.

`normalize()` fills the model's defaults and raises `InvalidRequest` for anything the model
cannot do; `estimated_tokens()` prices from the normalized spec; `content_items()` and
`task_parameters()` build what `BytePlusClient.create_task` sends.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from izgens.errors import InvalidRequest

__all__ = [
    "ADAPTIVE",
    "DEFAULT_MODEL",
    "FPS",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCES",
    "MODELS",
    "RATIOS",
    "GenerationSpec",
    "ModelInfo",
    "ReferenceKind",
    "ReferenceRule",
    "check_references",
    "content_items",
    "estimated_tokens",
    "get_model",
    "normalize",
    "output_size",
    "task_parameters",
]

DEFAULT_MODEL = "seedance-1-0-pro-fast-251015"
FPS = 24
MAX_PROMPT_CHARS = 4000
MAX_REFERENCES = 9
MAX_SEED = 2_147_483_647
ADAPTIVE = "adaptive"
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")

ReferenceKind = Literal["image", "video"]
Size = tuple[int, int]

# Output pixel sizes, §2.2, in RATIOS order.
_480_V2 = ((864, 496), (752, 560), (640, 640), (560, 752), (496, 864), (992, 432))
_480_V25 = ((854, 480), (752, 560), (640, 640), (560, 752), (480, 854), (992, 432))
_480_V1 = ((864, 480), (736, 544), (640, 640), (544, 736), (480, 864), (960, 416))
_720_V2 = ((1280, 720), (1112, 834), (960, 960), (834, 1112), (720, 1280), (1470, 630))
_720_V1 = ((1248, 704), (1120, 832), (960, 960), (832, 1120), (704, 1248), (1504, 640))
_1080_V2 = ((1920, 1080), (1664, 1248), (1440, 1440), (1248, 1664), (1080, 1920), (2206, 946))
_1080_V1 = ((1920, 1088), (1664, 1248), (1440, 1440), (1248, 1664), (1088, 1920), (2176, 928))
_4K_V2 = ((3840, 2160), (3326, 2494), (2880, 2880), (2494, 3326), (2160, 3840), (4398, 1886))


def _sizes(rows: Mapping[str, tuple[Size, ...]]) -> dict[str, dict[str, Size]]:
    """Per resolution: each ratio's size, plus `adaptive` = the largest pixel count (for prices)."""
    table: dict[str, dict[str, Size]] = {}
    for resolution, sizes in rows.items():
        by_ratio = dict(zip(RATIOS, sizes, strict=True))
        by_ratio[ADAPTIVE] = max(sizes, key=lambda wh: wh[0] * wh[1])
        table[resolution] = by_ratio
    return table


@dataclass(frozen=True, slots=True)
class ReferenceRule:
    """How one kind of reference is sent to a model: its content `role` and how many."""

    role: str
    min_count: int
    max_count: int


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What one Seedance model accepts (provider facts), with the defaults we apply."""

    id: str
    name: str
    major: int
    resolutions: tuple[str, ...]
    default_resolution: str
    duration_range: tuple[int, int]
    default_duration: int
    supports_audio: bool
    supports_seed: bool
    supports_camera_fixed: bool
    references: Mapping[str, ReferenceRule]
    sizes: Mapping[str, Mapping[str, Size]]
    ratios: tuple[str, ...] = (*RATIOS, ADAPTIVE)
    adaptive_text_only: bool = True  # False: 1.0 text-to-video refuses `adaptive`
    auto_duration: bool = True  # the API accepts -1; we never send it
    api_default_duration: int = 5
    supports_frames: bool = False
    supports_draft: bool = False
    supports_flex: bool = False
    supports_priority: bool = False
    supports_last_frame: bool = True
    max_reference_audios: int = 0
    adaptive_only_with_video: bool = False
    output_formats: tuple[str, ...] = ("mp4",)

    def default_ratio(self, with_image: bool) -> str:
        """1.0 defaults to 16:9 for text-to-video and `adaptive` from an image (§2.2)."""
        if not self.adaptive_text_only and not with_image:
            return "16:9"
        return ADAPTIVE


_V1_IMAGE = {"image": ReferenceRule("first_frame", 0, 1)}
_V20_REFS = {
    "image": ReferenceRule("reference_image", 0, 9),
    "video": ReferenceRule("reference_video", 0, 3),
}
_V25_REFS = {
    "image": ReferenceRule("reference_image", 0, 30),
    "video": ReferenceRule("reference_video", 0, 10),
}


def _v20(model_id: str, name: str, resolutions: tuple[str, ...]) -> ModelInfo:
    sizes = _sizes({"480p": _480_V2, "720p": _720_V2, "1080p": _1080_V2, "4k": _4K_V2})
    return ModelInfo(
        id=model_id,
        name=name,
        major=2,
        resolutions=resolutions,
        default_resolution="720p",
        duration_range=(4, 15),
        default_duration=5,
        supports_audio=True,
        supports_seed=False,
        supports_camera_fixed=False,
        references=_V20_REFS,
        sizes={r: sizes[r] for r in resolutions},
        supports_priority=True,
        max_reference_audios=3,
    )


def _v10(model_id: str, name: str, *, last_frame: bool) -> ModelInfo:
    return ModelInfo(
        id=model_id,
        name=name,
        major=1,
        resolutions=("480p", "720p", "1080p"),
        default_resolution="1080p",
        duration_range=(2, 12),
        default_duration=5,
        supports_audio=False,
        supports_seed=True,
        supports_camera_fixed=True,
        references=_V1_IMAGE,
        sizes=_sizes({"480p": _480_V1, "720p": _720_V1, "1080p": _1080_V1}),
        adaptive_text_only=False,
        auto_duration=False,
        supports_frames=True,
        supports_flex=True,
        supports_last_frame=last_frame,
    )


_MODELS: tuple[ModelInfo, ...] = (
    ModelInfo(
        id="dreamina-seedance-2-5-260628",
        name="Dreamina Seedance 2.5",
        major=2,
        resolutions=("480p", "720p"),
        default_resolution="720p",
        duration_range=(4, 30),
        default_duration=5,
        api_default_duration=-1,
        supports_audio=True,
        supports_seed=False,
        supports_camera_fixed=False,
        references=_V25_REFS,
        sizes=_sizes({"480p": _480_V25, "720p": _720_V2}),
        supports_priority=True,
        max_reference_audios=10,
        adaptive_only_with_video=True,
        output_formats=("mp4", "mov"),
    ),
    _v20("dreamina-seedance-2-0-260128", "Dreamina Seedance 2.0", ("480p", "720p", "1080p", "4k")),
    _v20("dreamina-seedance-2-0-fast-260128", "Dreamina Seedance 2.0 fast", ("480p", "720p")),
    _v20("dreamina-seedance-2-0-mini-260615", "Dreamina Seedance 2.0 mini", ("480p", "720p")),
    ModelInfo(
        id="seedance-1-5-pro-251215",
        name="Seedance 1.5 pro",
        major=1,
        resolutions=("480p", "720p", "1080p"),
        default_resolution="720p",
        duration_range=(4, 12),
        default_duration=5,
        supports_audio=True,
        supports_seed=True,
        supports_camera_fixed=True,
        references=_V1_IMAGE,
        sizes=_sizes({"480p": _480_V2, "720p": _720_V2, "1080p": _1080_V2}),
        supports_draft=True,
        supports_flex=True,
    ),
    _v10("seedance-1-0-pro-250528", "Seedance 1.0 pro", last_frame=True),
    _v10("seedance-1-0-pro-fast-251015", "Seedance 1.0 pro fast", last_frame=False),
)

MODELS: Mapping[str, ModelInfo] = {m.id: m for m in _MODELS}

# Legacy `--flag value` text commands (§2.4); the provider reads them from the prompt itself.
_TEXT_COMMAND = re.compile(
    r"(?<!\S)--(resolution|rs|ratio|rt|duration|dur|frames|framespersecond|fps|seed"
    r"|camerafixed|cf|watermark|wm)\b",
    re.IGNORECASE,
)


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


def get_model(model_id: str) -> ModelInfo:
    """The catalog entry, or `InvalidRequest` naming the models that exist."""
    try:
        return MODELS[model_id]
    except KeyError:
        names = ", ".join(MODELS)
        raise InvalidRequest(f"unknown model {model_id!r}; available: {names}") from None


def output_size(model_id: str, resolution: str, ratio: str) -> Size:
    """Pixel size of the output; for `adaptive` the largest size of that resolution."""
    info = get_model(model_id)
    try:
        return info.sizes[resolution][ratio]
    except KeyError:
        raise InvalidRequest(f"{resolution} {ratio} is not an output size of {model_id}") from None


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


@dataclass(frozen=True, slots=True)
class _Choice:
    """A spec resolved against its model: every value concrete."""

    info: ModelInfo
    resolution: str
    ratio: str
    duration: int
    seed: int | None
    camera_fixed: bool
    generate_audio: bool


def _choose(spec: GenerationSpec) -> _Choice:
    info = get_model(spec.model or DEFAULT_MODEL)
    if _TEXT_COMMAND.search(spec.prompt):
        raise InvalidRequest(
            "the prompt must not contain parameter flags such as --duration or --resolution; "
            "use the request fields instead"
        )

    refs = spec.reference_keys
    most = sum(rule.max_count for rule in info.references.values())
    if len(refs) > most:
        if info.major == 1:
            raise InvalidRequest(f"{info.id} takes at most one reference image (the first frame)")
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
            "resolution": choice.resolution,
            "ratio": choice.ratio,
            "duration": choice.duration,
            "seed": choice.seed,
            "camera_fixed": choice.camera_fixed,
            "generate_audio": choice.generate_audio,
        }
    )


def estimated_tokens(spec: GenerationSpec) -> int:
    """Tokens the provider will bill at most: ceil(W·H·(24·duration + 1) / 1024).

    The provider counts real frames (24 per second plus one); `adaptive` is priced at the
    largest size of its resolution so the estimate never falls short of the bill. Input
    reference videos (2.x) are billed on top by the provider and are not counted here.
    """
    choice = _choose(spec)
    width, height = choice.info.sizes[choice.resolution][choice.ratio]
    return math.ceil(width * height * (FPS * choice.duration + 1) / 1024)


def check_references(spec: GenerationSpec, kinds: Sequence[str]) -> None:
    """Refuse references the model cannot take; call before debiting, once kinds are known."""
    info = get_model(spec.model or DEFAULT_MODEL)
    for kind in kinds:
        if kind not in ("image", "video"):
            raise InvalidRequest(f"unknown reference kind {kind!r}; use image or video")
        if kind not in info.references:
            raise InvalidRequest(f"{info.id} does not take {kind} references")
    for kind, rule in info.references.items():
        count = sum(1 for k in kinds if k == kind)
        if count > rule.max_count:
            raise InvalidRequest(f"{info.id} takes at most {rule.max_count} {kind} references")
    if info.adaptive_only_with_video and "video" in kinds and spec.ratio not in (None, ADAPTIVE):
        raise InvalidRequest(f"{info.id} needs ratio 'adaptive' when a reference video is given")


def content_items(
    spec: GenerationSpec, reference_urls: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """The BytePlus `content` array: the prompt, then each (kind, url) reference with its role.

    1.x models take one image as the first frame; 2.x models take `reference_image`s and
    `reference_video`s (multimodal reference mode).
    """
    info = get_model(spec.model or DEFAULT_MODEL)
    check_references(spec, [kind for kind, _ in reference_urls])
    items: list[dict[str, Any]] = [{"type": "text", "text": spec.prompt}]
    for kind, url in reference_urls:
        role = info.references[kind].role
        key = "image_url" if kind == "image" else "video_url"
        items.append({"type": key, key: {"url": url}, "role": role})
    return items


def task_parameters(spec: GenerationSpec) -> dict[str, Any]:
    """Body fields for create_task: only those the model supports, every one explicit.

    `generate_audio` is always sent where supported because the API's own default is True.
    """
    choice = _choose(spec)
    params: dict[str, Any] = {
        "resolution": choice.resolution,
        "ratio": choice.ratio,
        "duration": choice.duration,
        "watermark": False,
    }
    if choice.info.supports_seed:
        params["seed"] = choice.seed
    if choice.info.supports_camera_fixed:
        params["camera_fixed"] = choice.camera_fixed
    if choice.info.supports_audio:
        params["generate_audio"] = choice.generate_audio
    return params
