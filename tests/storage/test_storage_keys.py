"""Key layout and key parsing: only keys we would have written are ever accepted."""

from __future__ import annotations

import re
import uuid

import pytest

from izgens.errors import InvalidRequest, NotFound
from izgens.storage import Storage

# Nothing listens on port 9: a test that reached S3 would fail with ProviderUnavailable.
OFFLINE = Storage(
    "izgens-test",
    endpoint_url="http://127.0.0.1:9",
    region="us-east-1",
    access_key_id="test",
    secret_access_key="test",
)

U = "0b5e7f3c-7a61-4a6e-9d55-2f0f3c1f9a10"
G = "6f1d2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b"


def test_builders_use_canonical_ids_and_never_a_filename() -> None:
    assert Storage.video_key(U, G) == f"videos/{U}/{G}.mp4"
    assert Storage.video_key(U.upper(), uuid.UUID(G)) == f"videos/{U}/{G}.mp4"
    assert Storage.export_key(uuid.UUID(U), G) == f"exports/{U}/{G}.json"
    first, second = Storage.reference_key(U, "png"), Storage.reference_key(U, "png")
    assert re.fullmatch(rf"references/{U}/[0-9a-f]{{32}}\.png", first)
    assert first != second


@pytest.mark.parametrize("bad", ["", "x", "../" + U, U + "/..", U[:-1] + "g", f" {U}"])
def test_builders_refuse_ids_that_are_not_uuids(bad: str) -> None:
    with pytest.raises(ValueError):
        Storage.video_key(bad, G)
    with pytest.raises(ValueError):
        Storage.reference_key(bad, "png")


def test_reference_key_refuses_unknown_extensions() -> None:
    for ext in ("gif", "PNG", "png/../x", "exe", ""):
        with pytest.raises(ValueError):
            Storage.reference_key(U, ext)


def test_parse_video_key_accepts_exactly_our_layout() -> None:
    assert Storage.parse_video_key(f"videos/{U}/{G}.mp4") == (U, G)


@pytest.mark.parametrize(
    "key",
    [
        f"videos/{U}/{G}.mov",
        f"videos/{U}/{G}.mp4/",
        f"videos/{U}/{G}.mp4\n",
        f"videos/{U}/{G}.MP4",
        f"/videos/{U}/{G}.mp4",
        f"videos//{U}/{G}.mp4",
        f"videos/{U}/x/{G}.mp4",
        f"videos/{U}/../{U}/{G}.mp4",
        f"videos/../videos/{U}/{G}.mp4",
        f"videos/{U}/{G}.mp4?x=1",
        f"videos/{U.upper()}/{G}.mp4",
        f"videos/{U.replace('-', '')}/{G}.mp4",
        f"videos/{U}/{G.replace('a', 'а')}.mp4",  # Cyrillic а
        f"videos/{U}/{G.replace('1', '１')}.mp4",  # fullwidth digit
        f"videos\\{U}\\{G}.mp4",
        f"references/{U}/{G}.mp4",
        f"videos/{U}/{G}.mp4\x00",
        f"videos/{U}%2F{G}.mp4",
        "",
    ],
)
def test_parse_video_key_refuses_everything_else(key: str) -> None:
    assert Storage.parse_video_key(key) is None


def test_parse_video_key_refuses_non_strings() -> None:
    assert Storage.parse_video_key(None) is None  # type: ignore[arg-type]
    assert Storage.parse_video_key(b"videos/x") is None  # type: ignore[arg-type]


OWN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    "key",
    [
        f"references/{U}/../{G}/{OWN}.png",
        f"references/{G}/{OWN}.png",  # someone else's prefix
        f"references/{U}/{OWN}.png/../x.png",
        f"references/{U}//{OWN}.png",
        f"/references/{U}/{OWN}.png",
        f"references/{U}/{OWN}.PNG",
        f"references/{U}/{OWN}.gif",
        f"references/{U}/{OWN}.png\n",
        f"references/{U}/{OWN[:-1]}ａ.png",  # fullwidth a
        f"references/{U}/sub/{OWN}.png",
        f"references/{U}/{OWN}",
        f"references/{U}%2F{OWN}.png",
        f"references/{U.upper()}/{OWN}.png",
        f"videos/{U}/{G}.mp4",
        f"exports/{U}/{G}.json",
        "",
    ],
)
def test_check_reference_refuses_foreign_or_odd_keys_without_touching_s3(key: str) -> None:
    with pytest.raises(NotFound):
        OFFLINE.check_reference(key, U)


def test_check_reference_refuses_a_non_string_key() -> None:
    with pytest.raises(NotFound):
        OFFLINE.check_reference(None, U)  # type: ignore[arg-type]


def test_check_reference_refuses_the_wrong_kind_before_touching_s3() -> None:
    with pytest.raises(InvalidRequest):
        OFFLINE.check_reference(f"references/{U}/{OWN}.png", U, expected_kind="video")


@pytest.mark.parametrize("key", ["", "/x", "a/../b", "a//b", "a/b/", "ä", "a\nb", "a b"])
def test_object_operations_refuse_malformed_keys(key: str) -> None:
    with pytest.raises(ValueError):
        OFFLINE.head(key)
    with pytest.raises(ValueError):
        OFFLINE.presigned_get(key, 60)


@pytest.mark.parametrize("prefix", ["", "/", "references", "references/../", "a//", "../"])
def test_delete_prefix_refuses_anything_but_a_folder(prefix: str) -> None:
    with pytest.raises(ValueError):
        OFFLINE.delete_prefix(prefix)
