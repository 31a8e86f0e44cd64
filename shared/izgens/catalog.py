"""The Seedance model catalog and the one place a generation request becomes a plan.

Facts come from `reference/byteplus-seedance.md` §2 (model ids, resolutions, ratios, durations,
pixel sizes, reference roles, input limits). Our own policies sit on top of those facts:

- `duration=-1` ("the model picks the length, billing follows") is never offered: prices are
  fixed up front, before any money moves, so every generation has a known length.
- `generate_audio` defaults to False (the API defaults to True) to keep prices low, and is
  always sent explicitly for the models that support it.
- Legacy text commands in the prompt (`--resolution 1080p`, `--dur 12`, …) are refused: the
  provider may honour them over the body fields, which would let a prompt buy a longer or
  sharper video than the one that was priced. The prompt is the only free text that reaches
  the provider (references go as our own presigned URLs), and it is checked after Unicode
  compatibility normalisation with invisible characters removed (`text_command`).

`plan()` turns a request and its checked references into a `Plan`: the normalized spec, the
content and body fields to send, and the tokens the provider will bill (output frames, and
on 2.x the reference videos' seconds), which SQL turns into credits (`price_credits`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from izgens.errors import InvalidRequest

if TYPE_CHECKING:
    from izgens.media import VideoInfo

__all__ = [
    "ADAPTIVE",
    "DEFAULT_MODEL",
    "FPS",
    "MAX_PROMPT_CHARS",
    "FRAMES",
    "MAX_REFERENCES",
    "MODELS",
    "REFERENCE",
    "RATIOS",
    "GenerationSpec",
    "Mode",
    "ModelInfo",
    "Plan",
    "Reference",
    "ReferenceKind",
    "ReferenceRule",
    "get_model",
    "normalize",
    "output_size",
    "plan",
    "text_command",
]

DEFAULT_MODEL = "seedance-1-0-pro-fast-251015"
FPS = 24
MAX_PROMPT_CHARS = 4000
MAX_REFERENCES = 9
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

# Legacy `--flag value` text commands (§2.4): names and abbreviations, longest first, with
# any separator tolerated inside the multi-word ones (camera_fixed, frames-per-second).
_SEP = r"[\W_]*"
_COMMAND_NAMES = (
    f"frames{_SEP}per{_SEP}second",
    f"camera{_SEP}fixed",
    f"water{_SEP}mark",
    "resolution",
    "duration",
    "frames",
    "ratio",
    "seed",
    "fps",
    "dur",
    "rs",
    "rt",
    "cf",
    "wm",
)
# two or more dashes, up to three non-alphanumerics (spaces, brackets, `=`, `_`), the name,
# and no letter after it: `--dur5`, `x--rs=1080p`, `-- [duration] 9` all count
_TEXT_COMMAND = re.compile(
    rf"-{{2,}}[^0-9a-z]{{0,3}}({'|'.join(_COMMAND_NAMES)})(?![a-z])", re.IGNORECASE
)
# every character Unicode calls a dash, and the minus sign, reads as `-`; the long dashes
# as `--` (a word processor's rendering of a typed double hyphen)
_DASHES = {
    **{ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2043\u2212\ufe58\ufe63\uff0d\u058a\u1806"},
    **{ord(c): "--" for c in "\u2014\u2015\u2e3a\u2e3b\u2053"},
}
# invisible or combining characters a flag could hide behind; control characters count
# as spaces
_HIDDEN = frozenset({"Cf", "Mn", "Me", "Co", "Cs", "Cn"})


def _visible(text: str) -> str:
    """The text as the provider could read it: compatibility forms folded (fullwidth,
    no-break spaces), invisible and combining characters removed, dashes unified."""
    folded = unicodedata.normalize("NFKC", text).translate(_DASHES)
    kept = []
    for ch in folded:
        category = unicodedata.category(ch)
        if category in _HIDDEN:
            continue
        kept.append(" " if category == "Cc" or category.startswith("Z") else ch)
    return "".join(kept)


def text_command(text: str) -> str | None:
    """The first legacy text command in `text` (as found after normalisation), or None."""
    found = _TEXT_COMMAND.search(_visible(text))
    return found.group(0) if found else None


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
