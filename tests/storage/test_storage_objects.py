"""Bulk deletion, setup helpers, settings wiring, cold-start hygiene and the local emulator."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
import uuid
from types import SimpleNamespace
from typing import Any

import pytest

from izgens.config import Settings
from izgens.storage import Storage, UnsafeURL
from izgens.storage.urls import _check_peer, _HostRule, _Target
from izgens_local.s3 import LocalS3, SqsEventPump, start_local_s3


def _keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in page.get("Contents", []))


def test_delete_prefix_removes_everything_under_it_and_nothing_else(
    storage: Storage, s3: Any, user_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = str(uuid.uuid4())
    mine = [storage.reference_key(user_id, "png") for _ in range(5)]
    keep = [
        storage.reference_key(other, "png"),
        f"references/{user_id}-old/x.png",  # shares the text prefix, not the folder
        storage.video_key(user_id, uuid.uuid4()),
    ]
    for key in mine + keep:
        s3.put_object(Bucket=storage.bucket, Key=key, Body=b"x")
    pending = s3.create_multipart_upload(Bucket=storage.bucket, Key=mine[0] + ".part")
    monkeypatch.setattr(storage, "_page_size", 2)  # force several list/delete pages

    assert storage.delete_prefix(f"references/{user_id}/") == len(mine)

    assert _keys(s3, storage.bucket, f"references/{user_id}/") == []
    for key in keep:
        assert storage.head(key) is not None, key
    uploads = s3.list_multipart_uploads(Bucket=storage.bucket, Prefix=f"references/{user_id}/")
    assert pending["UploadId"] not in {u["UploadId"] for u in uploads.get("Uploads") or []}
    assert storage.delete_prefix(f"references/{user_id}/") == 0  # idempotent


def test_ensure_bucket_is_idempotent(local_s3: LocalS3) -> None:
    fresh = Storage(
        f"izgens-new-{uuid.uuid4().hex[:8]}",
        endpoint_url=local_s3.endpoint_url,
        region="eu-west-1",
        access_key_id="test",
        secret_access_key="test",
    )
    fresh.ensure_bucket()
    fresh.ensure_bucket()
    assert fresh.head("nothing/here") is None


def test_from_settings_passes_keys_only_to_a_custom_endpoint() -> None:
    custom = Storage.from_settings(
        Settings(
            s3_bucket="b1",
            s3_endpoint_url="https://ref.storage.supabase.co/storage/v1/s3",
            AWS_REGION="eu-central-1",
            AWS_ACCESS_KEY_ID="key-id",
            AWS_SECRET_ACCESS_KEY="secret",
        )
    )
    assert (custom.bucket, custom.endpoint_url, custom.region) == (
        "b1",
        "https://ref.storage.supabase.co/storage/v1/s3",
        "eu-central-1",
    )
    assert (custom._access_key_id, custom._secret_access_key) == ("key-id", "secret")

    aws = Storage.from_settings(
        Settings(s3_endpoint_url="", AWS_ACCESS_KEY_ID="ASIA...", AWS_SECRET_ACCESS_KEY="tmp")
    )
    assert aws.endpoint_url is None
    assert (aws._access_key_id, aws._secret_access_key) == (None, None)


def test_importing_and_constructing_storage_loads_neither_boto3_nor_httpx() -> None:
    code = (
        "import sys\n"
        "from izgens.storage import Storage\n"
        "s = Storage('b', endpoint_url=None, region='us-east-1')\n"
        "s.reference_key('0b5e7f3c-7a61-4a6e-9d55-2f0f3c1f9a10', 'png')\n"
        "print(sorted(m for m in ('boto3', 'botocore', 'httpx') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True
    )
    assert done.stdout.strip() == "[]"


def _response(peer: tuple[str, int] | None) -> Any:
    stream = SimpleNamespace(get_extra_info=lambda name: peer if name == "server_addr" else None)
    return SimpleNamespace(extensions={"network_stream": stream})


def test_the_connected_address_is_checked_again() -> None:
    """Vetting resolves once; httpx resolves again. If DNS changed in between (rebinding),
    the peer address is refused before a byte of the body is read."""
    public = _Target(
        "https://v.example.com/a", "https", "v.example.com", 443, _HostRule.parse(".example.com")
    )
    _check_peer(_response(("93.184.216.34", 443)), public)
    _check_peer(_response(None), public)
    for address in ("10.1.2.3", "169.254.169.254", "127.0.0.1", "::1", "::ffff:192.168.0.1"):
        with pytest.raises(UnsafeURL):
            _check_peer(_response((address, 443)), public)
    trusted = _Target(
        "http://127.0.0.1:8001/a", "http", "127.0.0.1", 8001, _HostRule.parse("127.0.0.1:8001")
    )
    _check_peer(_response(("127.0.0.1", 8001)), trusted)


def test_allowlist_entry_forms() -> None:
    suffix = _HostRule.parse(".BytePlusES.com")
    assert suffix.matches("https", "a.b.bytepluses.com", 443)
    assert suffix.matches("https", "bytepluses.com", 443)
    assert not suffix.matches("http", "a.bytepluses.com", 80)
    assert not suffix.matches("https", "xbytepluses.com", 443)
    exact = _HostRule.parse("cdn.example.com")
    assert exact.matches("https", "cdn.example.com", 443)
    assert not exact.matches("https", "a.cdn.example.com", 443)
    dev = _HostRule.parse("127.0.0.1:8001")
    assert dev.matches("http", "127.0.0.1", 8001) and dev.matches("https", "127.0.0.1", 8001)
    assert dev.trusted_endpoint and not exact.trusted_endpoint
    pinned = _HostRule.parse("http://127.0.0.1:8001")
    assert pinned.matches("http", "127.0.0.1", 8001)
    assert not pinned.matches("https", "127.0.0.1", 8001)
    v6 = _HostRule.parse("[::1]:8001")
    assert v6.matches("http", "::1", 8001) and not v6.matches("http", "::1", 8002)


# -- the local emulator -----------------------------------------------------------------------


def test_local_s3_refuses_a_busy_port_instead_of_hanging() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(OSError, match="in use"):
            start_local_s3(busy.getsockname()[1], bucket="izgens-busy")


def test_local_s3_handle_describes_itself(local_s3: LocalS3) -> None:
    env = local_s3.env()
    assert env["S3_ENDPOINT_URL"] == local_s3.endpoint_url
    assert env["S3_BUCKET"] == local_s3.bucket
    assert local_s3.endpoint_url.startswith("http://127.0.0.1:")
    assert local_s3.queue_arn.endswith(":izgens-test-events")


def test_pump_drops_messages_that_are_not_json(local_s3: LocalS3) -> None:
    import boto3

    sqs = boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=local_s3.region
    ).client("sqs", endpoint_url=local_s3.endpoint_url)
    url = sqs.create_queue(QueueName=f"junk-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="this is not json")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Records": []}))
    seen: list[dict[str, Any]] = []
    done = threading.Event()

    def handler(body: dict[str, Any]) -> None:
        seen.append(body)
        done.set()

    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]

    def waiting() -> list[str]:
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return [attributes[name] for name in names]

    with SqsEventPump(url, local_s3.endpoint_url, handler, visibility_timeout=1):
        assert done.wait(10)
        deadline = time.monotonic() + 10
        while waiting() != ["0", "0"] and time.monotonic() < deadline:
            time.sleep(0.1)
    assert seen == [{"Records": []}]
    assert waiting() == ["0", "0"]  # both deleted: the junk dropped, the good one handled
    sqs.delete_queue(QueueUrl=url)
