"""MP4 files for the tests: the simulator's own tiny video, and files of any length and
size built box by box (ISO/IEC 14496-12).

The index (`moov`) is real; the media (`mdat`) is filler, since nothing here decodes frames.
Options make the files lie the ways hostile uploads do: a movie header that declares less
than the frames hold, an index at the end, a file cut short.
"""

from __future__ import annotations

import struct
from importlib import resources

__all__ = ["box", "make_mp4", "tiny_mp4"]


def tiny_mp4() -> bytes:
    """The simulator's own video (local/fixtures/tiny10.mp4): a valid 64x64 H.264 MP4 of
    ten frames, 980 bytes."""
    return resources.files("izgens_local").joinpath("fixtures/tiny10.mp4").read_bytes()


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", version << 24), *payload)


_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def _mvhd(timescale: int, duration: int, version: int) -> bytes:
    times = (
        struct.pack(">QQIQ", 0, 0, timescale, duration)
        if version == 1
        else struct.pack(">IIII", 0, 0, timescale, duration)
    )
    rest = struct.pack(">IH10x", 0x10000, 0x100) + _MATRIX + bytes(24) + struct.pack(">I", 3)
    return full_box(b"mvhd", version, times, rest)


def _tkhd(track_id: int, duration: int, width: int, height: int, version: int) -> bytes:
    times = (
        struct.pack(">QQII", 0, 0, track_id, 0) + struct.pack(">Q", duration)
        if version == 1
        else struct.pack(">IIIII", 0, 0, track_id, 0, duration)
    )
    rest = bytes(8) + struct.pack(">hhhH", 0, 0, 0, 0) + _MATRIX
    return full_box(b"tkhd", version, times, rest, struct.pack(">II", width << 16, height << 16))


def _mdhd(timescale: int, duration: int, version: int) -> bytes:
    times = (
        struct.pack(">QQIQ", 0, 0, timescale, duration)
        if version == 1
        else struct.pack(">IIII", 0, 0, timescale, duration)
    )
    return full_box(b"mdhd", version, times, struct.pack(">HH", 0x55C4, 0))


def _trak(
    track_id: int,
    handler: bytes,
    *,
    movie_duration: int,
    timescale: int,
    samples: int,
    delta: int,
    media_duration: int,
    width: int,
    height: int,
    version: int,
) -> bytes:
    stbl = box(
        b"stbl",
        full_box(b"stsd", 0, struct.pack(">I", 0)),
        full_box(b"stts", 0, struct.pack(">III", 1, samples, delta)),
        full_box(b"stsc", 0, struct.pack(">IIII", 1, 1, samples, 1)),
        full_box(b"stsz", 0, struct.pack(">II", 16, samples)),
        full_box(b"stco", 0, struct.pack(">II", 1, 0)),
    )
    media_header = full_box(b"vmhd" if handler == b"vide" else b"smhd", 0, bytes(8))
    return box(
        b"trak",
        _tkhd(track_id, movie_duration, width, height, version),
        box(
            b"mdia",
            _mdhd(timescale, media_duration, version),
            full_box(b"hdlr", 0, bytes(4), handler, bytes(12), b"izgens\x00"),
            box(b"minf", media_header, stbl),
        ),
    )


def make_mp4(
    seconds: float = 5.0,
    *,
    fps: int = 24,
    width: int = 1280,
    height: int = 720,
    audio: bool = True,
    faststart: bool = True,
    declared_seconds: float | None = None,
    version: int = 0,
    brand: bytes = b"isom",
    mdat_bytes: int = 256,
) -> bytes:
    """A `seconds` long video track (and an AAC-like audio track of the same length).
    `declared_seconds` is what the movie, track and media headers claim instead (a liar);
    the sample table always holds `seconds` of frames."""
    frames = max(1, round(seconds * fps))
    timescale = fps * 512
    declared = seconds if declared_seconds is None else declared_seconds
    movie_scale = 1000
    tracks = [
        _trak(
            1,
            b"vide",
            movie_duration=round(declared * movie_scale),
            timescale=timescale,
            samples=frames,
            delta=512,
            media_duration=round(declared * timescale),
            width=width,
            height=height,
            version=version,
        )
    ]
    if audio:
        rate = 44100
        tracks.append(
            _trak(
                2,
                b"soun",
                movie_duration=round(declared * movie_scale),
                timescale=rate,
                samples=max(1, round(seconds * rate / 1024)),
                delta=1024,
                media_duration=round(declared * rate),
                width=0,
                height=0,
                version=version,
            )
        )
    moov = box(b"moov", _mvhd(movie_scale, round(declared * movie_scale), version), *tracks)
    ftyp = box(b"ftyp", brand, struct.pack(">I", 0x200), brand, b"iso2avc1mp41")
    mdat = box(b"mdat", bytes(mdat_bytes))
    return ftyp + moov + mdat if faststart else ftyp + mdat + moov
