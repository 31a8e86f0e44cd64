"""Lambda events as AWS delivers them, one JSON file each, for the handler tests.

    function_url            a Function URL request (payload 2.0, the HTTP API v2 format):
                            the HTTP functions
    s3_object_created       an S3 ObjectCreated notification: video_stored, as the bucket's
                            event source invokes it
    s3_test_event           what S3 sends first when a notification is configured
    sqs_s3_object_created   the same notification through an SQS queue (Lambda's SQS event)
    scheduled               the EventBridge schedule's event: cleanup, every job
    cleanup_jobs            a manual cleanup run of named jobs (docs/operations.md)
    export_job              the asynchronous invocation that builds an export
                            (izgens.export_jobs)

`load(name, **overrides)` answers a fresh copy with the named parts replaced, so a test
states only what its event is about.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

__all__ = ["load", "records"]

Event = dict[str, Any]


def load(name: str, **overrides: Any) -> Event:
    """`<name>.json`, deep-copied, with each override applied; an override the event does
    not know is an error (a typo must not leave the canonical value in place)."""
    event = copy.deepcopy(_read(name))
    known = _OVERRIDES.get(name, {})
    for key, value in overrides.items():
        if key not in known:
            raise TypeError(f"{name} events take {sorted(known)} as overrides, not {key!r}")
        known[key](event, value)
    return event


def records(*events: Event) -> Event:
    """One event holding the records of all of these (S3 and SQS deliver several at once)."""
    return {"Records": [record for event in events for record in event["Records"]]}


@functools.cache
def _read(name: str) -> Event:
    return json.loads((Path(__file__).parent / f"{name}.json").read_text())


# -- function_url -------------------------------------------------------------------------


def _path(event: Event, path: str) -> None:
    event["rawPath"] = event["requestContext"]["http"]["path"] = path


def _method(event: Event, method: str) -> None:
    event["requestContext"]["http"]["method"] = method.upper()


def _query(event: Event, query: str) -> None:
    """The raw query string, and the parsed form Lambda adds beside it (repeated names
    joined by commas; absent when there is no query)."""
    event["rawQueryString"] = query
    parsed: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parsed[key] = f"{parsed[key]},{value}" if key in parsed else value
    if parsed:
        event["queryStringParameters"] = parsed
    else:
        event.pop("queryStringParameters", None)


def _headers(event: Event, headers: dict[str, str | None]) -> None:
    """Added to the canonical ones, names lowercased as Function URLs pass them; None
    removes one."""
    for name, value in headers.items():
        if value is None:
            event["headers"].pop(name.lower(), None)
        else:
            event["headers"][name.lower()] = value


def _body(event: Event, body: str | bytes | None) -> None:
    """Text as is; bytes base64-encoded, as Lambda passes a binary body; None: no body."""
    if body is None:
        event.pop("body", None)
        event["isBase64Encoded"] = False
    elif isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = True
    else:
        event["body"] = body
        event["isBase64Encoded"] = False


def _source_ip(event: Event, address: str) -> None:
    event["requestContext"]["http"]["sourceIp"] = address
    event["headers"]["x-forwarded-for"] = address


# -- S3 and SQS ---------------------------------------------------------------------------


def _object(field: str) -> Callable[[Event, Any], None]:
    def put(event: Event, value: Any) -> None:
        event["Records"][0]["s3"]["object"][field] = value

    return put


def _event_name(event: Event, name: str) -> None:
    event["Records"][0]["eventName"] = name


def _message(event: Event, body: Event | str) -> None:
    """The message's body (an event is sent as its JSON) and the digest SQS adds to it."""
    text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
    record = event["Records"][0]
    record["body"] = text
    record["md5OfBody"] = hashlib.md5(text.encode()).hexdigest()


# -- our own invocations ------------------------------------------------------------------


def _jobs(event: Event, jobs: list[str]) -> None:
    event["jobs"] = list(jobs)


def _export_id(event: Event, export_id: object) -> None:
    event["export_id"] = str(export_id)


_OVERRIDES: dict[str, dict[str, Callable[[Event, Any], None]]] = {
    "function_url": {
        "method": _method,
        "path": _path,
        "query": _query,
        "headers": _headers,
        "body": _body,
        "source_ip": _source_ip,
    },
    "s3_object_created": {
        "key": _object("key"),
        "size": _object("size"),
        "etag": _object("eTag"),
        "event_name": _event_name,
    },
    "s3_test_event": {},
    "sqs_s3_object_created": {"body": _message},
    "scheduled": {},
    "cleanup_jobs": {"jobs": _jobs},
    "export_job": {"export_id": _export_id},
}
