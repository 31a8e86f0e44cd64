"""The model catalog against the numbers of reference/byteplus-seedance.md, and every refusal."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from izgens.catalog import (
    DEFAULT_MODEL,
    MODELS,
    GenerationSpec,
    Plan,
    normalize,
    output_size,
    plan,
)
from izgens.errors import InvalidRequest
from izgens.media import VideoInfo

V20 = "dreamina-seedance-2-0-260128"
V20_FAST = "dreamina-seedance-2-0-fast-260128"
V25 = "dreamina-seedance-2-5-260628"
V15 = "seedance-1-5-pro-251215"
V10 = "seedance-1-0-pro-250528"


def spec(**fields: Any) -> GenerationSpec:
    return GenerationSpec(prompt=fields.pop("prompt", "a paper boat on a river"), **fields)


@dataclass(frozen=True)
class Ref:
    """A checked reference as the bucket reports it (izgens.storage.ReferenceInfo)."""

    kind: str
    video: VideoInfo | None = None


def video(seconds: float, width: int = 1280, height: int = 720) -> Ref:
    ms = round(seconds * 1000)
    return Ref("video", VideoInfo(ms, ms, width, height, round(seconds * 24)))


IMAGE = Ref("image")


def planned(refs: list[Ref] | None = None, **fields: Any) -> Plan:
    refs = refs or []
    keys = [f"references/u/{i}" for i in range(len(refs))]
    return plan(spec(reference_keys=keys, **fields), refs)


def estimated_tokens(given: GenerationSpec) -> int:
    return plan(given).output_tokens


def test_catalog_lists_every_current_model_and_no_deactivated_one() -> None:
    assert set(MODELS) == {
        "dreamina-seedance-2-5-260628",
        "dreamina-seedance-2-0-260128",
        "dreamina-seedance-2-0-fast-260128",
        "dreamina-seedance-2-0-mini-260615",
        "seedance-1-5-pro-251215",
        "seedance-1-0-pro-250528",
        "seedance-1-0-pro-fast-251015",
    }
    assert DEFAULT_MODEL == "seedance-1-0-pro-fast-251015"
    assert not any("lite" in model for model in MODELS)


def test_default_model_defaults() -> None:
    n = normalize(spec())
    assert (n.model, n.resolution, n.ratio, n.duration) == (DEFAULT_MODEL, "1080p", "16:9", 5)
    assert (n.seed, n.camera_fixed, n.generate_audio) == (-1, False, False)
    assert n.prompt == "a paper boat on a river"


def test_one_x_defaults_to_adaptive_from_an_image() -> None:
    assert normalize(spec(reference_keys=["references/u/a.png"])).ratio == "adaptive"


@pytest.mark.parametrize("model", [V20, V20_FAST, V25, "dreamina-seedance-2-0-mini-260615"])
def test_two_x_defaults(model: str) -> None:
    n = normalize(spec(model=model))
    assert (n.resolution, n.ratio, n.duration) == ("720p", "adaptive", 5)
    assert n.seed is None and n.generate_audio is False and n.camera_fixed is False


def test_one_five_defaults() -> None:
    n = normalize(spec(model=V15))
    assert (n.resolution, n.ratio, n.duration, n.seed, n.generate_audio) == (
        "720p",
        "adaptive",
        5,
        -1,
        False,
    )


def test_normalize_is_idempotent_and_keeps_choices() -> None:
    given = spec(model=V15, resolution="480p", ratio="9:16", duration=12, seed=7, camera_fixed=True)
    once = normalize(given)
    assert normalize(once) == once
    assert (once.resolution, once.ratio, once.duration, once.seed, once.camera_fixed) == (
        "480p",
        "9:16",
        12,
        7,
        True,
    )


def test_switches_that_are_off_are_accepted_on_models_without_them() -> None:
    assert normalize(spec(generate_audio=False)).generate_audio is False
    assert normalize(spec(model=V20, camera_fixed=False)).camera_fixed is False


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"model": "seedance-1-0-lite-t2v-250428"}, "unknown model"),
        ({"model": "nope"}, "unknown model"),
        ({"resolution": "4k"}, "resolution '4k'"),
        ({"model": V20_FAST, "resolution": "1080p"}, "resolution '1080p'"),
        ({"model": V25, "resolution": "1080p"}, "resolution '1080p'"),
        ({"ratio": "2:1"}, "ratio '2:1'"),
        ({"ratio": "adaptive"}, "needs a reference image"),
        ({"model": V10, "ratio": "adaptive"}, "needs a reference image"),
        ({"duration": -1}, "fixed up front"),
        ({"model": V20, "duration": -1}, "fixed up front"),
        ({"duration": 1}, "2-12 seconds"),
        ({"duration": 13}, "2-12 seconds"),
        ({"model": V15, "duration": 3}, "4-12 seconds"),
        ({"model": V20, "duration": 16}, "4-15 seconds"),
        ({"model": V25, "duration": 31}, "4-30 seconds"),
        ({"model": V20, "seed": 5}, "seed is not supported"),
        ({"model": V25, "seed": -1}, "seed is not supported"),
        ({"model": V20, "camera_fixed": True}, "camera_fixed is not supported"),
        ({"generate_audio": True}, "generate_audio is not supported"),
        ({"model": V10, "generate_audio": True}, "generate_audio is not supported"),
        ({"reference_keys": ["a", "b"]}, "at most one image (the first frame)"),
        ({"model": V10, "reference_keys": ["a", "b", "c"]}, "a first and a last frame"),
        ({"model": V15, "mode": "reference"}, "first and last frame only"),
        ({"prompt": "a boat --duration 12"}, "parameter flags"),
        ({"prompt": "a boat --RS 1080p"}, "parameter flags"),
        ({"prompt": "a boat --cf true"}, "parameter flags"),
    ],
)
def test_normalize_refuses_what_the_model_cannot_do(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        normalize(spec(**fields))
    assert words in str(caught.value)
    assert caught.value.code == "invalid_request"


def test_prompt_mentioning_dashes_in_prose_is_fine() -> None:
    assert normalize(spec(prompt="a well-lit room -- quiet, 24fps look")).prompt


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": "   "},
        {"prompt": ""},
        {"prompt": "x" * 4001},
        {"reference_keys": [f"k{i}" for i in range(10)]},
        {"reference_keys": [""]},
        {"duration": "5"},
        {"generate_audio": "yes"},
        {"seed": 2_147_483_648},
        {"seed": -2},
        {"colour": "blue"},
    ],
)
def test_spec_refuses_malformed_fields(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        GenerationSpec.model_validate({"prompt": "ok", **fields})


def test_prompt_is_stripped_and_may_be_4000_chars() -> None:
    assert GenerationSpec(prompt="  " + "y" * 4000 + "\n").prompt == "y" * 4000


@pytest.mark.parametrize(
    ("model", "resolution", "ratio", "size"),
    [
        (DEFAULT_MODEL, "720p", "16:9", (1248, 704)),
        (V10, "720p", "21:9", (1504, 640)),
        (DEFAULT_MODEL, "1080p", "16:9", (1920, 1088)),
        (DEFAULT_MODEL, "480p", "4:3", (736, 544)),
        (V20, "720p", "16:9", (1280, 720)),
        (V15, "480p", "16:9", (864, 496)),
        (V15, "1080p", "21:9", (2206, 946)),
        (V25, "480p", "16:9", (854, 480)),
        (V25, "480p", "9:16", (480, 854)),
        (V20, "4k", "21:9", (4398, 1886)),
        (V20, "4k", "3:4", (2494, 3326)),
        # adaptive is priced at the largest pixel count of the resolution
        (V20, "720p", "adaptive", (1112, 834)),
        (DEFAULT_MODEL, "1080p", "adaptive", (1920, 1088)),
        (V20, "4k", "adaptive", (3326, 2494)),
    ],
)
def test_output_sizes_match_the_reference_table(
    model: str, resolution: str, ratio: str, size: tuple[int, int]
) -> None:
    assert output_size(model, resolution, ratio) == size


def test_every_model_has_a_size_for_each_resolution_and_ratio() -> None:
    for info in MODELS.values():
        assert info.default_resolution in info.resolutions
        for resolution in info.resolutions:
            assert set(info.sizes[resolution]) == set(info.ratios)


@pytest.mark.parametrize(
    ("fields", "tokens"),
    [
        # the tutorial's sample: 1920x1088, 121 frames
        ({"resolution": "1080p", "ratio": "16:9", "duration": 5}, 246840),
        # 720p 4 s on a 2.x model: 921600 * 97 / 1024
        ({"model": V20, "resolution": "720p", "ratio": "16:9", "duration": 4}, 87300),
        # 1.x 720p 16:9 is 1248x704
        ({"resolution": "720p", "ratio": "16:9", "duration": 5}, 103818),
        ({"duration": 2, "resolution": "480p", "ratio": "1:1"}, 19600),
    ],
)
def test_estimated_tokens_follow_the_formula(fields: dict[str, Any], tokens: int) -> None:
    assert estimated_tokens(spec(**fields)) == tokens


@pytest.mark.parametrize("duration", [4, 5, 12, 30])
def test_estimated_tokens_for_two_five_at_720p(duration: int) -> None:
    tokens = estimated_tokens(spec(model=V25, ratio="16:9", duration=duration))
    assert tokens == 21600 * duration + 900


def test_estimate_for_adaptive_is_never_below_a_fixed_ratio() -> None:
    adaptive = estimated_tokens(spec(model=V20))
    for ratio in ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9"):
        assert adaptive >= estimated_tokens(spec(model=V20, ratio=ratio))


def test_content_for_one_x_sends_the_image_as_first_frame() -> None:
    items = planned([IMAGE]).content(["https://x/a.png"])
    assert items == [
        {"type": "text", "text": "a paper boat on a river"},
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}, "role": "first_frame"},
    ]


def test_content_for_two_x_sends_reference_roles() -> None:
    urls = ["https://x/a.png", "https://x/b.mp4", "https://x/c"]
    items = planned([IMAGE, video(5), IMAGE], model=V20).content(urls)
    assert [(i["type"], i.get("role")) for i in items] == [
        ("text", None),
        ("image_url", "reference_image"),
        ("video_url", "reference_video"),
        ("image_url", "reference_image"),
    ]
    assert items[2]["video_url"] == {"url": "https://x/b.mp4"}


def test_text_only_content() -> None:
    assert plan(spec(prompt=" hi ")).content([]) == [{"type": "text", "text": "hi"}]


@pytest.mark.parametrize(
    ("model", "refs", "words"),
    [
        (DEFAULT_MODEL, [video(5)], "must be images"),
        (V15, [video(5)], "must be images"),
        (V20, [video(4)] * 4, "at most 3 video"),
        (V20, [Ref("audio")], "unknown reference kind"),
        (V20, [video(1.5)], "2-15 seconds"),
        (V20, [video(15.5)], "2-15 seconds"),
        (V20, [video(8), video(8)], "15 seconds together"),
        (V25, [video(31)], "2-30 seconds"),
        (V25, [video(10)] * 4, "30 seconds together"),
        (V20, [video(5, 320, 240)], "480p to 4K"),
        (V20, [video(5, 7680, 4320)], "480p to 4K"),
    ],
)
def test_references_the_model_cannot_take(model: str, refs: list[Ref], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words):
        planned(refs, model=model)


def test_one_x_takes_one_image_only() -> None:
    with pytest.raises(InvalidRequest, match="at most one image"):
        planned([IMAGE, IMAGE])


@pytest.mark.parametrize("model", [V10, V15, V20, V25])
def test_frames_mode_sends_a_first_and_a_last_frame(model: str) -> None:
    items = planned([IMAGE, IMAGE], model=model, mode="frames").content(
        ["https://x/1", "https://x/2"]
    )
    assert [i.get("role") for i in items] == [None, "first_frame", "last_frame"]
    assert planned([IMAGE], model=model, mode="frames").spec.mode == "frames"


def test_each_model_defaults_to_its_own_mode() -> None:
    assert planned([IMAGE]).spec.mode == "frames"
    assert planned([IMAGE], model=V20).spec.mode == "reference"
    assert planned([IMAGE], model=V20).content(["u"])[1]["role"] == "reference_image"


def test_frames_mode_takes_images_only_and_two_five_needs_adaptive() -> None:
    with pytest.raises(InvalidRequest, match="must be images"):
        planned([video(5)], model=V20, mode="frames")
    with pytest.raises(InvalidRequest, match="adaptive"):
        planned([IMAGE], model=V25, mode="frames", ratio="16:9")
    assert planned([IMAGE], model=V25, mode="frames").spec.ratio == "adaptive"


def test_two_five_with_a_video_needs_adaptive() -> None:
    planned([video(5)], model=V25)  # the default ratio is adaptive
    with pytest.raises(InvalidRequest, match="adaptive"):
        planned([video(5)], model=V25, ratio="16:9")
    planned([IMAGE], model=V25, ratio="16:9")


def test_reference_video_seconds_are_billed_at_the_output_size() -> None:
    without = planned(model=V20, ratio="16:9", duration=5)
    assert (without.input_tokens, without.input_video_ms) == (0, 0)
    # 1280x720 = 900 tokens a frame; 5 s output = 121 frames; 4.5 s input = 108 frames + 1
    one = planned([video(4.5)], model=V20, ratio="16:9", duration=5)
    assert one.output_tokens == 900 * 121
    assert (one.input_video_ms, one.input_tokens) == (4500, 900 * 109)
    two = planned([video(4.5), video(2)], model=V20, ratio="16:9", duration=5)
    assert (two.input_video_ms, two.input_tokens) == (6500, 900 * (109 + 49))
    images = planned([IMAGE, IMAGE], model=V20, ratio="16:9", duration=5)
    assert images.input_tokens == 0


def test_plan_needs_one_checked_reference_per_key() -> None:
    with pytest.raises(ValueError, match="one checked reference"):
        plan(spec(reference_keys=["references/u/a"]), [])


def test_task_parameters_send_only_what_the_model_supports() -> None:
    assert plan(spec()).task_parameters() == {
        "resolution": "1080p",
        "ratio": "16:9",
        "duration": 5,
        "watermark": False,
        "seed": -1,
        "camera_fixed": False,
    }
    assert plan(spec(model=V20, resolution="480p")).task_parameters() == {
        "resolution": "480p",
        "ratio": "adaptive",
        "duration": 5,
        "watermark": False,
        "generate_audio": False,
    }
    assert plan(spec(model=V15, generate_audio=True)).task_parameters()["generate_audio"] is True


def test_plan_refuses_what_normalize_refuses() -> None:
    with pytest.raises(InvalidRequest):
        plan(spec(duration=-1))
