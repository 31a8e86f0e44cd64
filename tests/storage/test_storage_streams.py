"""Streams with flat memory: put_json_stream (privacy exports) and copy_from_url's multipart
path. Memory is measured with tracemalloc in a child process, because the moto server (which
does hold whole objects) lives in this one."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from izgens.storage import MIN_PART_SIZE, Storage
from izgens_local.s3 import LocalS3

from .conftest import VideoHost

BODY = 12_000_000  # three parts of 5 MiB (the last one short)

CHILD = r"""
import json, sys, tracemalloc
from izgens.storage import MIN_PART_SIZE, Storage

endpoint, bucket, mode, key, arg, body = sys.argv[1:7]
storage = Storage(bucket, endpoint_url=endpoint, region="us-east-1", access_key_id="test",
                  secret_access_key="test", part_size=MIN_PART_SIZE)

def records(n):
    yield b'{"generations": ['
    for i in range(n):
        sep = b"," if i else b""
        yield sep + json.dumps({"id": i, "prompt": "a cat on a skateboard " * 4}).encode()
    yield b"]}"

def run(key, arg):
    if mode == "json":
        return storage.put_json_stream(key, records(int(arg)))
    port = arg
    return storage.copy_from_url(f"http://127.0.0.1:{port}/blob?size={body}&length=0", key,
                                 allowed_hosts=[f"127.0.0.1:{port}"], max_bytes=int(body))

run(key + ".warmup", "50" if mode == "json" else arg)  # imports, client, operation models
storage.delete(key + ".warmup")
tracemalloc.start()
info = run(key, arg)
peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"peak": peak, "size": info.size, "etag": info.etag}))
"""


def _child(local_s3: LocalS3, mode: str, key: str, arg: str) -> dict[str, Any]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            local_s3.endpoint_url,
            local_s3.bucket,
            mode,
            key,
            arg,
            str(BODY),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_copy_streams_with_bounded_memory(
    local_s3: LocalS3, storage: Storage, video_host: VideoHost, user_id: str
) -> None:
    key = Storage.video_key(user_id, uuid.uuid4())
    result = _child(local_s3, "copy", key, str(video_host.port))
    assert result["size"] == BODY and result["etag"].endswith("-3")
    assert result["peak"] < MIN_PART_SIZE + 2 * 1024 * 1024, result
    assert result["peak"] < BODY * 0.6, result
    head = storage.head(key)
    assert head is not None and head.size == BODY


def test_json_export_streams_with_bounded_memory(
    local_s3: LocalS3, storage: Storage, user_id: str
) -> None:
    key = Storage.export_key(user_id, uuid.uuid4())
    n = 300_000  # ~35 MB of JSON in 300k chunks
    result = _child(local_s3, "json", key, str(n))
    parts = -(-result["size"] // MIN_PART_SIZE)
    assert result["size"] > BODY and parts > 3 and result["etag"].endswith(f"-{parts}")
    # two part buffers: one filling while the previous one uploads (put_json_stream overlaps)
    assert result["peak"] < 2 * MIN_PART_SIZE + 2 * 1024 * 1024, result
    assert result["peak"] < result["size"] * 0.6, result
    stored = storage.client.get_object(Bucket=storage.bucket, Key=key)
    assert stored["ContentType"] == "application/json"
    document = json.loads(stored["Body"].read())
    assert [g["id"] for g in document["generations"]] == list(range(n))


def test_small_json_is_a_single_put(storage: Storage, user_id: str) -> None:
    key = Storage.export_key(user_id, uuid.uuid4())
    chunks = [b'{"account": ', json.dumps({"email": "a@example.com"}).encode(), b"}"]
    info = storage.put_json_stream(key, iter(chunks))
    assert "-" not in info.etag  # not a multipart ETag
    body = storage.client.get_object(Bucket=storage.bucket, Key=key)["Body"].read()
    assert json.loads(body) == {"account": {"email": "a@example.com"}}
    assert info.size == len(body)


def test_exact_multiple_of_the_part_size(storage: Storage, user_id: str) -> None:
    key = Storage.export_key(user_id, uuid.uuid4())
    info = storage.put_json_stream(key, iter([b" " * (2 * MIN_PART_SIZE - 2), b"{}"]))
    assert info.size == 2 * MIN_PART_SIZE and info.etag.endswith("-2")
    head = storage.head(key)
    assert head is not None and head.size == 2 * MIN_PART_SIZE


def test_a_failing_producer_leaves_nothing_behind(storage: Storage, user_id: str) -> None:
    key = Storage.export_key(user_id, uuid.uuid4())

    def chunks() -> Iterator[bytes]:
        yield b"[" + b" " * (MIN_PART_SIZE + 10)  # one part already uploaded
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="database went away"):
        storage.put_json_stream(key, chunks())
    uploads = storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=key)
    assert storage.head(key) is None and not uploads.get("Uploads")
