"""What each Seedance model takes (reference/byteplus-seedance.md §2): ids, resolutions and pixel sizes, ratios, durations, switches, reference roles and limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from izgens.errors import InvalidRequest

if TYPE_CHECKING:
    pass

__all__ = [
    "MAX_SEED",
    "ADAPTIVE",
    "DEFAULT_MODEL",
    "FPS",
    "FRAMES",
    "MODELS",
    "Mode",
    "ModelInfo",
    "RATIOS",
    "REFERENCE",
    "ReferenceKind",
    "ReferenceRule",
    "get_model",
    "output_size",
]

DEFAULT_MODEL = "seedance-1-0-pro-fast-251015"

FPS = 24

MAX_SEED = 2_147_483_647

ADAPTIVE = "adaptive"

RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")

# reference videos (2.x), §2.3: width x height within these bounds
MIN_VIDEO_PIXELS = 409_600

MAX_VIDEO_PIXELS = 8_295_044

ReferenceKind = Literal["image", "video"]

Mode = Literal["frames", "reference"]

FRAMES: Mode = "frames"  # images as the first (and last) frame: image-to-video

REFERENCE: Mode = "reference"  # 2.x multimodal reference: images and videos as references

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
    references: Mapping[str, ReferenceRule]  # multimodal reference mode (2.x); {} on 1.x
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
    video_seconds: tuple[int, int] = (2, 15)  # each reference video, §2.3
    video_total_seconds: int = 15  # all reference videos together

    @property
    def modes(self) -> tuple[Mode, ...]:
        return (FRAMES, REFERENCE) if self.references else (FRAMES,)

    @property
    def default_mode(self) -> Mode:
        return REFERENCE if self.references else FRAMES

    @property
    def max_frames(self) -> int:
        """Images in frames mode: the first frame, and the last where the model takes one."""
        return 2 if self.supports_last_frame else 1

    def default_ratio(self, with_image: bool) -> str:
        """1.0 defaults to 16:9 for text-to-video and `adaptive` from an image (§2.2)."""
        if not self.adaptive_text_only and not with_image:
            return "16:9"
        return ADAPTIVE


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
        references={},
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
        video_seconds=(2, 30),
        video_total_seconds=30,
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
        references={},
        sizes=_sizes({"480p": _480_V2, "720p": _720_V2, "1080p": _1080_V2}),
        supports_draft=True,
        supports_flex=True,
    ),
    _v10("seedance-1-0-pro-250528", "Seedance 1.0 pro", last_frame=True),
    _v10("seedance-1-0-pro-fast-251015", "Seedance 1.0 pro fast", last_frame=False),
)

MODELS: Mapping[str, ModelInfo] = {m.id: m for m in _MODELS}


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
