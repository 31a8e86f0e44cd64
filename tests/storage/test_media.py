"""Reading a reference video's duration from its MP4 index: real ffmpeg output, files built
box by box (every layout and version), liars, truncations and arbitrary bytes; and the
bucket reading only the index, in at most two ranged GETs."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from izgens.media import HEAD_BYTES, UnreadableMedia, VideoInfo, locate_moov, parse_moov
from izgens.storage import Storage
from tests.support.mp4 import box, make_mp4, tiny_mp4


def read(data: bytes, head: int = HEAD_BYTES) -> VideoInfo:
    """What the bucket does: the first `head` bytes, then at most one more range."""
    found = locate_moov(data[:head], 0, len(data))
    if isinstance(found, tuple):
        offset, length = found
        found = locate_moov(data[offset : offset + length], offset, len(data))
        if isinstance(found, tuple):
            raise UnreadableMedia("index not found")
    return parse_moov(found)


def test_ffmpegs_own_file() -> None:
    assert read(tiny_mp4()) == VideoInfo(1000, 1000, 64, 64, 10)


@pytest.mark.parametrize("seconds", [2, 4.5, 15, 30])
@pytest.mark.parametrize("fps", [24, 30, 60])
@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("faststart", [True, False])
def test_every_layout_and_version(seconds: float, fps: int, version: int, faststart: bool) -> None:
    data = make_mp4(seconds, fps=fps, version=version, faststart=faststart, audio=False)
    info = read(data)
    assert info.content_ms == round(seconds * 1000)
    assert info.duration_ms == round(seconds * 1000)
    assert (info.width, info.height, info.frames) == (1280, 720, round(seconds * fps))


def test_the_longest_declared_duration_is_the_one_priced() -> None:
    shorter_headers = read(make_mp4(15, declared_seconds=2, audio=False))
    assert (shorter_headers.duration_ms, shorter_headers.content_ms) == (15_000, 15_000)
    longer_headers = read(make_mp4(3, declared_seconds=9, audio=False))
    assert (longer_headers.duration_ms, longer_headers.content_ms) == (9_000, 3_000)
    # an audio track that outlasts the video counts too
    with_audio = read(make_mp4(4.5))
    assert with_audio.content_ms == 4500 and with_audio.duration_ms > 4500


def test_an_index_at_the_end_of_a_large_file_takes_one_more_range() -> None:
    data = make_mp4(5, faststart=False, mdat_bytes=3 * HEAD_BYTES)
    found = locate_moov(data[:HEAD_BYTES], 0, len(data))
    assert isinstance(found, tuple)
    offset, length = found
    assert offset == len(data) - length or offset + length <= len(data)
    assert read(data).content_ms == 5000


def _fragmented() -> bytes:
    data = make_mp4(5)
    moov_at = data.index(b"moov") - 4
    (size,) = struct.unpack_from(">I", data, moov_at)
    moov = data[moov_at : moov_at + size]
    grown = box(b"moov", moov[8:], box(b"mvex", bytes(8)))
    return data[:moov_at] + grown + data[moov_at + size :]


@pytest.mark.parametrize(
    ("why", "data", "words"),
    [
        ("no boxes at all", b"\x89PNG\r\n\x1a\n" + bytes(64), "truncated|not a valid"),
        ("html", b"<html><body>" + bytes(400), "truncated|not a valid"),
        ("empty", b"", "no MP4 index"),
        ("cut inside the index", make_mp4(5)[:300], "truncated"),
        ("cut in the media data", make_mp4(5)[:-10], "truncated"),
        ("index cut at the end", make_mp4(5, faststart=False)[:-20], "truncated"),
        ("no index", make_mp4(5)[:32] + box(b"mdat", bytes(40)), "no MP4 index"),
        ("no video track", make_mp4(5).replace(b"vide", b"soun"), "no video track"),
        ("fragmented", _fragmented(), "fragmented"),
        ("a zero timescale", make_mp4(5).replace(struct.pack(">I", 1000), bytes(4), 1), "duration"),
    ],
)
def test_unreadable_files_are_refused(why: str, data: bytes, words: str) -> None:
    with pytest.raises(UnreadableMedia, match=words) as refused:
        read(data)
    assert refused.value.code == "invalid_request", why


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_read_or_refused(data: bytes) -> None:
    try:
        read(data)
    except UnreadableMedia:
        return


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_files_are_read_or_refused(data: Any) -> None:
    """Flip bytes anywhere in a real index: an answer or UnreadableMedia, never a crash."""
    original = bytearray(make_mp4(5, version=data.draw(st.sampled_from([0, 1]))))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(original) - 1))
        original[at] = data.draw(st.integers(0, 255))
    try:
        info = read(bytes(original))
    except UnreadableMedia:
        return
    assert info.duration_ms >= info.content_ms > 0


def test_the_bucket_reads_only_the_index(storage: Storage, s3: Any, user_id: str) -> None:
    """A faststart file: one ranged GET of its start; an index at the end: one more."""
    gets: list[str] = []

    def count(params: dict[str, Any], **_: Any) -> None:
        gets.append(params.get("Range", ""))

    storage.client.meta.events.register("provide-client-params.s3.GetObject", count)
    try:
        for faststart, expected in ((True, 1), (False, 2)):
            gets.clear()
            data = make_mp4(6, faststart=faststart, mdat_bytes=2 * HEAD_BYTES, audio=False)
            key = storage.reference_key(user_id, "mp4")
            s3.put_object(Bucket=storage.bucket, Key=key, Body=data, ContentType="video/mp4")
            info = storage.check_reference(key, user_id)
            assert info.video is not None and info.video.content_ms == 6000
            assert len(gets) == expected, gets
            assert all(g.startswith("bytes=") for g in gets)
    finally:
        storage.client.meta.events.unregister("provide-client-params.s3.GetObject", count)


def test_the_bucket_names_the_key_of_an_unreadable_video(
    storage: Storage, s3: Any, user_id: str
) -> None:
    key = storage.reference_key(user_id, "mp4")
    s3.put_object(Bucket=storage.bucket, Key=key, Body=make_mp4(5)[:300], ContentType="video/mp4")
    with pytest.raises(UnreadableMedia, match=key):
        storage.check_reference(key, user_id)
