"""The recorded events stay what AWS sends: every file has its overrides, the SQS one
carries the S3 one with the digest SQS computes, and a loaded event is a copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.events import _OVERRIDES, load, records

NAMES = sorted(p.stem for p in Path(__file__).parent.glob("*.json"))


def test_every_recorded_event_is_known_to_the_loader() -> None:
    assert NAMES == sorted(_OVERRIDES)


@pytest.mark.parametrize("name", NAMES)
def test_a_loaded_event_is_a_fresh_copy(name: str) -> None:
    first = load(name)
    first["changed"] = True
    assert "changed" not in load(name)


def test_the_sqs_event_carries_the_s3_notification_and_its_digest() -> None:
    (record,) = load("sqs_s3_object_created")["Records"]
    assert json.loads(record["body"]) == load("s3_object_created")
    assert record["md5OfBody"] == hashlib.md5(record["body"].encode()).hexdigest()
    (moved,) = load("sqs_s3_object_created", body="x")["Records"]
    assert moved["md5OfBody"] == hashlib.md5(b"x").hexdigest()


def test_overrides_reach_every_place_aws_repeats_them() -> None:
    event = load("function_url", method="post", path="/a", query="k=1&k=2", source_ip="192.0.2.1")
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], event["rawPath"]) == ("POST", "/a", "/a")
    assert event["queryStringParameters"] == {"k": "1,2"} and event["rawQueryString"] == "k=1&k=2"
    assert http["sourceIp"] == event["headers"]["x-forwarded-for"] == "192.0.2.1"
    binary = load("function_url", body=b"\x00\xff")
    assert binary["isBase64Encoded"] and binary["body"] == "AP8="
    assert "body" not in load("function_url", body=None)
    assert len(records(load("s3_object_created"), load("s3_object_created"))["Records"]) == 2


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(TypeError, match="rawpath"):
        load("function_url", rawpath="/typo")
