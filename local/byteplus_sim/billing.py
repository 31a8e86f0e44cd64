"""What a succeeded task is billed (`usage.completion_tokens`), and the reference videos'
lengths it counts, read from the files downloaded at create."""

from __future__ import annotations

import math

import httpx

from izgens.catalog import FPS, ModelInfo
from izgens.errors import InvalidRequest
from izgens.media import locate_moov, parse_moov
from izgens_local.byteplus_sim.errors import invalid

# the provider's minimum with video input, as a multiple of the output's own tokens: the
# reference says only that there is one (UNCONFIRMED); public price tables put it at about
# an input as long as the output
VIDEO_INPUT_FLOOR = 2
MAX_REFERENCE_VIDEO_BYTES = 200_000_000


def completion_tokens(
    info: ModelInfo,
    resolution: str,
    ratio: str,
    *,
    duration: int | None,
    frames: int | None = None,
    input_video_ms: tuple[int, ...] = (),
) -> int:
    """What the provider bills a succeeded task (see the package docstring)."""
    width, height = info.sizes[resolution][ratio]
    output = frames if frames is not None else FPS * (duration or 5) + 1
    tokens = math.ceil(width * height * output / 1024)
    if not input_video_ms:
        return tokens
    inputs = sum(math.ceil(FPS * ms / 1000) for ms in input_video_ms)
    return max(math.ceil(width * height * (output + inputs) / 1024), VIDEO_INPUT_FLOOR * tokens)


async def _download(url: str, param: str) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=10.0) as http, http.stream("GET", url) as answer:
            if answer.status_code != 200:
                raise invalid(param, f"the video could not be downloaded ({answer.status_code})")
            data = bytearray()
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) > MAX_REFERENCE_VIDEO_BYTES:
                    raise invalid(param, "the video is larger than 200 MB")
    except httpx.HTTPError:
        raise invalid(param, "the video could not be downloaded") from None
    return bytes(data)


async def reference_video_ms(urls: list[tuple[int, str]], info: ModelInfo) -> tuple[int, ...]:
    """Each reference video downloaded and measured (its video track's samples), within the
    model's limits; 400 InvalidParameter naming the content item otherwise."""
    lengths = []
    shortest, longest = info.video_seconds
    for index, url in urls:
        param = f"content[{index}].video_url"
        data = await _download(url, param)
        try:
            index_box = locate_moov(data, 0, len(data))
            if isinstance(index_box, tuple):
                raise InvalidRequest("no index")
            ms = parse_moov(index_box).content_ms
        except InvalidRequest:
            raise invalid(param, "the video could not be decoded") from None
        if not shortest * 1000 <= ms <= longest * 1000:
            raise invalid(param, f"each video must last {shortest}-{longest} s")
        lengths.append(ms)
    if sum(lengths) > info.video_total_seconds * 1000:
        raise invalid("content", f"the videos may last {info.video_total_seconds} s in total")
    return tuple(lengths)
