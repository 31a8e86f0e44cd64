"""What we read from an uploaded reference video before pricing it: the MP4/MOV index.

BytePlus bills a 2.x generation with a reference video for the input's seconds too
(reference/byteplus-seedance.md §6.1), so a reference's duration is part of its price. The
duration comes from the file itself, never from the client: the ISO BMFF `moov` box (movie
header `mvhd`, each track's `tkhd` and `mdhd`, and the video track's sample table `stts`).
Only the index is read, never the media; `locate_moov` says which bytes to fetch, so a
ranged GET of the start of the file (and at most one more, for an index at the end) is all
it costs.

A file can declare different durations in different boxes. `VideoInfo.duration_ms`, the
one we price, is the longest of all of them: a file that declares 2 s in its header but
carries 15 s of frames is priced at 15 s. `content_ms` is what a player would play (the
video track's samples), the measure the provider's simulator bills by.

Everything wrong with the file raises `UnreadableMedia` (an `InvalidRequest`, so a 422):
not ISO BMFF, truncated, fragmented, no video track, no duration, an index too large.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from izgens.errors import InvalidRequest

__all__ = [
    "HEAD_BYTES",
    "MAX_INDEX_BYTES",
    "UnreadableMedia",
    "VideoInfo",
    "locate_moov",
    "parse_moov",
]

HEAD_BYTES = 256 * 1024  # the first GET of a reference video: ftyp and, when faststart, moov
MAX_INDEX_BYTES = 4 * 1024 * 1024  # a 30 s 60 fps file's index is well under 100 KiB
_MAX_TRACKS = 64
_UNKNOWN_32 = 0xFFFFFFFF
_UNKNOWN_64 = 0xFFFFFFFFFFFFFFFF


class UnreadableMedia(InvalidRequest):
    title = "The media file cannot be read"


@dataclass(frozen=True, slots=True)
class VideoInfo:
    duration_ms: int  # the longest duration the file declares anywhere, rounded up
    content_ms: int  # the video track's samples: what a player plays
    width: int  # the video track's display size (0 when the file does not say)
    height: int
    frames: int  # video samples


@dataclass(frozen=True, slots=True)
class _Box:
    kind: bytes
    start: int  # payload start, relative to the buffer
    end: int  # box end, relative to the buffer


def _header(buf: bytes, pos: int, limit: int) -> tuple[bytes, int, int] | None:
    """(type, header length, box size) at `pos`, or None when the header is not in `buf`.
    A size of 0 means "to `limit`" (the end of the enclosing box or file)."""
    if pos + 8 > len(buf):
        return None
    size, kind = struct.unpack_from(">I4s", buf, pos)
    header = 8
    if size == 1:
        if pos + 16 > len(buf):
            return None
        (size,) = struct.unpack_from(">Q", buf, pos + 8)
        header = 16
    elif size == 0:
        size = limit - pos
    if size < header:
        raise UnreadableMedia("the file is not a valid MP4: a box is smaller than its header")
    return kind, header, size


def _children(buf: bytes, start: int, end: int) -> list[_Box]:
    """The boxes inside [start, end) of `buf`, which must all be complete."""
    boxes: list[_Box] = []
    pos = start
    while pos < end:
        found = _header(buf, pos, end)
        if found is None or pos + found[2] > end:
            raise UnreadableMedia("the file is not a valid MP4: its index is truncated")
        kind, header, size = found
        boxes.append(_Box(kind, pos + header, pos + size))
        pos += size
    return boxes


def locate_moov(buf: bytes, base: int, file_size: int) -> bytes | tuple[int, int]:
    """The `moov` payload if it lies within `buf` (the file's bytes from offset `base`),
    else the (offset, length) of the file to fetch next, starting at the first top-level box
    whose header `buf` does not hold. Raises when the file has no index at all, or when a
    box whose header is in `buf` runs past the end of the file (a cut-off upload)."""
    pos = 0
    end = file_size - base
    moov: bytes | None = None
    while pos < end:
        found = _header(buf, pos, end)
        if found is None:
            if moov is not None:  # the boxes after the index are not in hand: fine
                return moov
            return base + pos, min(MAX_INDEX_BYTES, end - pos)
        kind, header, size = found
        if pos + size > end:
            raise UnreadableMedia("the file is truncated: a box runs past its end")
        if kind == b"moov" and moov is None:
            if size > MAX_INDEX_BYTES:
                raise UnreadableMedia(f"the video's index is larger than {MAX_INDEX_BYTES} bytes")
            if pos + size > len(buf):
                return base + pos, size
            moov = buf[pos + header : pos + size]
        pos += size
    if moov is None:
        raise UnreadableMedia("the file has no MP4 index (moov box)")
    return moov


def _full_box(buf: bytes, box: _Box, v0_size: int, v1_size: int) -> int:
    """The version of a full box whose fields need `v0_size`/`v1_size` bytes after the
    version and flags; raises when the box is too short for them."""
    if box.end - box.start < 4:
        raise UnreadableMedia("the file is not a valid MP4: a header box is too short")
    version = buf[box.start]
    need = v1_size if version == 1 else v0_size
    if version not in (0, 1) or box.end - box.start < 4 + need:
        raise UnreadableMedia("the file is not a valid MP4: unknown header box version")
    return version


def _timed(buf: bytes, box: _Box) -> tuple[int, int]:
    """(timescale, duration) of an `mvhd` or `mdhd` box."""
    if _full_box(buf, box, 16, 28) == 1:
        timescale, duration = struct.unpack_from(">IQ", buf, box.start + 20)
        unknown = duration == _UNKNOWN_64
    else:
        timescale, duration = struct.unpack_from(">II", buf, box.start + 12)
        unknown = duration == _UNKNOWN_32
    if timescale == 0 or unknown:
        raise UnreadableMedia("the video does not declare its duration")
    return timescale, duration


def _track_header(buf: bytes, box: _Box) -> tuple[int, int, int]:
    """(duration in the movie's timescale, width, height) of a `tkhd` box."""
    if _full_box(buf, box, 80, 92) == 1:
        (duration,) = struct.unpack_from(">Q", buf, box.start + 28)
        width, height = struct.unpack_from(">II", buf, box.start + 88)
        duration = 0 if duration == _UNKNOWN_64 else duration
    else:
        (duration,) = struct.unpack_from(">I", buf, box.start + 20)
        width, height = struct.unpack_from(">II", buf, box.start + 76)
        duration = 0 if duration == _UNKNOWN_32 else duration
    return duration, width >> 16, height >> 16


def _sample_times(buf: bytes, box: _Box) -> tuple[int, int]:
    """(samples, total duration in the track's timescale) from an `stts` box."""
    _full_box(buf, box, 4, 4)
    (entries,) = struct.unpack_from(">I", buf, box.start + 4)
    if entries > (box.end - box.start - 8) // 8:
        raise UnreadableMedia("the file is not a valid MP4: its sample table is truncated")
    samples = total = 0
    for i in range(entries):
        count, delta = struct.unpack_from(">II", buf, box.start + 8 + 8 * i)
        samples += count
        total += count * delta
    return samples, total


def _child(buf: bytes, box: _Box, kind: bytes) -> _Box | None:
    return next((c for c in _children(buf, box.start, box.end) if c.kind == kind), None)


def parse_moov(payload: bytes) -> VideoInfo:
    """Durations and size of a video from its `moov` payload (see the module docstring)."""
    boxes = _children(payload, 0, len(payload))
    kinds = [b.kind for b in boxes]
    if b"mvex" in kinds:
        raise UnreadableMedia("fragmented MP4 is not supported; export the video as a plain MP4")
    header = next((b for b in boxes if b.kind == b"mvhd"), None)
    if header is None:
        raise UnreadableMedia("the file is not a valid MP4: it has no movie header")
    movie_scale, movie_duration = _timed(payload, header)
    longest = movie_duration / movie_scale
    tracks = [b for b in boxes if b.kind == b"trak"]
    if len(tracks) > _MAX_TRACKS:
        raise UnreadableMedia(f"the file has more than {_MAX_TRACKS} tracks")
    video: tuple[float, int, int, int] | None = None
    for trak in tracks:
        tkhd, mdia = _child(payload, trak, b"tkhd"), _child(payload, trak, b"mdia")
        if tkhd is None or mdia is None:
            raise UnreadableMedia("the file is not a valid MP4: a track has no header")
        track_duration, width, height = _track_header(payload, tkhd)
        mdhd, hdlr = _child(payload, mdia, b"mdhd"), _child(payload, mdia, b"hdlr")
        if mdhd is None or hdlr is None or hdlr.end - hdlr.start < 12:
            raise UnreadableMedia("the file is not a valid MP4: a track has no media header")
        scale, media_duration = _timed(payload, mdhd)
        minf = _child(payload, mdia, b"minf")
        stbl = _child(payload, minf, b"stbl") if minf else None
        stts = _child(payload, stbl, b"stts") if stbl else None
        samples, sampled = _sample_times(payload, stts) if stts else (0, 0)
        longest = max(
            longest, track_duration / movie_scale, media_duration / scale, sampled / scale
        )
        if payload[hdlr.start + 8 : hdlr.start + 12] == b"vide" and video is None:
            video = (sampled / scale, width, height, samples)
    if video is None:
        raise UnreadableMedia("the file has no video track")
    content, width, height, frames = video
    if frames == 0 or content <= 0:
        raise UnreadableMedia("the video track holds no frames")
    return VideoInfo(
        duration_ms=math.ceil(longest * 1000),
        content_ms=math.ceil(content * 1000),
        width=width,
        height=height,
        frames=frames,
    )
