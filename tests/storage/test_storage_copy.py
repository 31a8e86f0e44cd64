"""copy_from_url: the provider's video streamed into the bucket, and every unsafe URL refused
before a single packet leaves for it. The only host ever contacted is the loopback test server.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from izgens.errors import InvalidRequest, PayloadTooLarge, ProviderUnavailable
from izgens.storage import Storage, UnexpectedContent, UnsafeURL
from tests.support.mp4 import tiny_mp4

from .conftest import VideoHost


@pytest.fixture
def key(user_id: str) -> str:
    return Storage.video_key(user_id, uuid.uuid4())


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every outgoing TCP connection attempt; anything but loopback fails the test at once."""
    seen: list[Any] = []
    real = socket.create_connection

    def guarded(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        seen.append(address)
        assert address[0] in ("127.0.0.1", "localhost"), f"tried to connect to {address}"
        return real(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    yield seen


def _nothing_stored(storage: Storage, key: str) -> bool:
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=key)
    return storage.head(key) is None and not uploads.get("Uploads")


def test_copies_the_video(storage: Storage, video_host: VideoHost, key: str) -> None:
    info = storage.copy_from_url(
        f"{video_host.base}/tiny.mp4", key, allowed_hosts=video_host.allowed, max_bytes=10_000
    )
    assert (info.size, info.content_type) == (980, "video/mp4")
    stored = storage.client.get_object(Bucket=storage.bucket, Key=key)
    assert stored["ContentType"] == "video/mp4"
    assert stored["Body"].read() == tiny_mp4()
    assert storage.head(key) == info


def test_octet_stream_is_accepted_when_the_bytes_are_mp4(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    url = f"{video_host.base}/blob?size=5000&type=application/octet-stream"
    info = storage.copy_from_url(url, key, allowed_hosts=video_host.allowed, max_bytes=10_000)
    assert info.size == 5000 and storage.head(key) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://videos.example.com/a.mp4",
        "https://bytepluses.com.evil.example/a.mp4",
        "https://evilbytepluses.com/a.mp4",
        "http://x.bytepluses.com/a.mp4",  # plain http to a suffix entry
        "https://x.bytepluses.com:8443/a.mp4",  # other port
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://10.0.0.1/a.mp4",
        "http://localhost/a.mp4",
        "http://2130706433/a.mp4",
        "http://0x7f000001/a.mp4",
        "http://[::1]/a.mp4",
        "http://0.0.0.0/a.mp4",
        "https://x.bytepluses.cоm/a.mp4",  # Cyrillic о
        "ftp://127.0.0.1/a.mp4",
        "file:///etc/passwd",
        "gopher://127.0.0.1:70/_",
        "//x.bytepluses.com/a.mp4",
        "https://user:pw@x.bytepluses.com/a.mp4",
        "https://x.bytepluses.com@127.0.0.1/a.mp4",
        "https://x.bytepluses.com\\@127.0.0.1/a.mp4",
        "https://x.bytepluses.com./a.mp4",
        "https://x.bytepluses.com /a.mp4",
        "https://x.bytepluses.com:99999/a.mp4",
        "",
    ],
)
def test_urls_outside_the_allowlist_are_refused_before_connecting(
    storage: Storage, video_host: VideoHost, key: str, connections: list[Any], url: str
) -> None:
    allowed = [".bytepluses.com", *video_host.allowed]
    with pytest.raises(UnsafeURL):
        storage.copy_from_url(url, key, allowed_hosts=allowed, max_bytes=10_000)
    assert connections == []
    assert issubclass(UnsafeURL, InvalidRequest)


def test_loopback_on_another_port_or_name_is_refused(
    storage: Storage, video_host: VideoHost, key: str, connections: list[Any]
) -> None:
    for url in (
        f"http://localhost:{video_host.port}/tiny.mp4",
        f"http://127.0.0.2:{video_host.port}/tiny.mp4",
        f"http://127.0.0.1:{video_host.port + 1}/tiny.mp4",
    ):
        with pytest.raises(UnsafeURL):
            storage.copy_from_url(url, key, allowed_hosts=video_host.allowed, max_bytes=10_000)
    assert connections == []


@pytest.mark.parametrize(
    ("entry", "url"),
    [
        ("169.254.169.254", "https://169.254.169.254/latest/meta-data/"),
        ("10.0.0.1", "https://10.0.0.1/a.mp4"),
        ("192.168.1.1", "https://192.168.1.1/a.mp4"),
        ("100.64.0.1", "https://100.64.0.1/a.mp4"),
        ("localhost", "https://localhost/a.mp4"),
        (".localhost", "https://localhost/a.mp4"),
        ("::1", "https://[::1]/a.mp4"),
        ("::ffff:10.0.0.1", "https://[::ffff:10.0.0.1]/a.mp4"),
        ("::ffff:169.254.169.254", "https://[::ffff:169.254.169.254]/a.mp4"),
        ("fe80::1", "https://[fe80::1]/a.mp4"),
        ("0.0.0.0", "https://0.0.0.0/a.mp4"),
    ],
)
def test_allowlisted_names_that_resolve_to_private_addresses_are_refused(
    storage: Storage, key: str, connections: list[Any], entry: str, url: str
) -> None:
    """A host entry without a port only ever reaches public addresses."""
    with pytest.raises(UnsafeURL):
        storage.copy_from_url(url, key, allowed_hosts=[entry], max_bytes=10_000)
    assert connections == []


def test_same_host_redirects_are_followed(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    url = f"{video_host.base}/redirect?to=/redirect%3Fto%3D/tiny.mp4"
    info = storage.copy_from_url(url, key, allowed_hosts=video_host.allowed, max_bytes=10_000)
    assert info.size == 980


@pytest.mark.parametrize(
    "target",
    [
        "http://localhost:{port}/tiny.mp4",
        "http://169.254.169.254/latest/meta-data/",
        "https://127.0.0.1:{port}/tiny.mp4",
        "http://127.0.0.1:{other}/tiny.mp4",
    ],
)
def test_redirects_to_another_host_are_refused(
    storage: Storage,
    video_host: VideoHost,
    key: str,
    connections: list[Any],
    target: str,
) -> None:
    location = target.format(port=video_host.port, other=video_host.port + 1)
    allowed = [
        *video_host.allowed,
        f"localhost:{video_host.port}",
        f"127.0.0.1:{video_host.port + 1}",
    ]
    video_host.hits.clear()
    with pytest.raises(UnsafeURL):
        storage.copy_from_url(
            f"{video_host.base}/redirect?to={location}",
            key,
            allowed_hosts=allowed,
            max_bytes=10_000,
        )
    assert [h.split("?")[0] for h in video_host.hits] == ["/redirect"]
    assert len(connections) == 1
    assert _nothing_stored(storage, key)


def test_redirect_loops_stop_after_three(storage: Storage, video_host: VideoHost, key: str) -> None:
    video_host.hits.clear()
    with pytest.raises(UnsafeURL):
        storage.copy_from_url(
            f"{video_host.base}/loop", key, allowed_hosts=video_host.allowed, max_bytes=10_000
        )
    assert video_host.hits == ["/loop"] * 4


def test_declared_oversize_is_refused_before_reading(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    with pytest.raises(PayloadTooLarge):
        storage.copy_from_url(
            f"{video_host.base}/blob?size=2000000",
            key,
            allowed_hosts=video_host.allowed,
            max_bytes=1_000_000,
        )
    assert _nothing_stored(storage, key)


def test_undeclared_oversize_aborts_the_multipart_upload(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    """No Content-Length: the limit trips mid-stream, after a part was already uploaded."""
    with pytest.raises(PayloadTooLarge):
        storage.copy_from_url(
            f"{video_host.base}/blob?size=12000000&length=0",
            key,
            allowed_hosts=video_host.allowed,
            max_bytes=storage.part_size + 1000,
        )
    assert _nothing_stored(storage, key)


@pytest.mark.parametrize(
    "query",
    ["type=text/html", "type=image/png", "magic=0", "magic=0&type=application/octet-stream"],
)
def test_content_that_is_not_mp4_is_refused(
    storage: Storage, video_host: VideoHost, key: str, query: str
) -> None:
    with pytest.raises(UnexpectedContent):
        storage.copy_from_url(
            f"{video_host.base}/blob?size=3000&{query}",
            key,
            allowed_hosts=video_host.allowed,
            max_bytes=10_000,
        )
    assert _nothing_stored(storage, key)


def test_http_errors_and_dead_hosts_are_provider_unavailable(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    with pytest.raises(ProviderUnavailable):
        storage.copy_from_url(
            f"{video_host.base}/expired.mp4", key, allowed_hosts=video_host.allowed, max_bytes=10
        )
    with socket.socket() as probe:  # a loopback port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    with pytest.raises(ProviderUnavailable):
        storage.copy_from_url(
            f"http://127.0.0.1:{dead}/a.mp4", key, allowed_hosts=[f"127.0.0.1:{dead}"], max_bytes=10
        )
    assert _nothing_stored(storage, key)


def test_a_multipart_sized_body_is_copied_whole(
    storage: Storage, video_host: VideoHost, key: str
) -> None:
    size = 12_000_000
    info = storage.copy_from_url(
        f"{video_host.base}/blob?size={size}&length=0",
        key,
        allowed_hosts=video_host.allowed,
        max_bytes=size,
    )
    assert info.size == size and info.etag.endswith("-3")  # 5 MiB + 5 MiB + rest
    head = storage.head(key)
    assert head is not None and head.size == size and head.content_type == "video/mp4"
    first = storage.client.get_object(Bucket=storage.bucket, Key=key, Range="bytes=0-31")
    assert first["Body"].read() == tiny_mp4()[:32]


@pytest.mark.parametrize(
    "entry", ["ftp://x.example.com", "http://x.example.com", "x.example.com/path", "", "[::1"]
)
def test_malformed_allowlist_entries_are_a_configuration_error(
    storage: Storage, key: str, entry: str
) -> None:
    with pytest.raises(ValueError):
        storage.copy_from_url(
            "https://x.example.com/a.mp4", key, allowed_hosts=[entry], max_bytes=1
        )
