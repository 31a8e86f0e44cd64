"""Shared by the privacy tests: what a user leaves behind (a finished generation with its
video, a reference upload, a paid purchase), straight from SQL and the bucket, and the
export once its builder is done."""

from __future__ import annotations

import json
import time
import uuid

import httpx

from izgens.db import Database
from izgens.storage import get_storage
from tests.support.generations import spec, start
from tests.support.mp4 import tiny_mp4
from tests.support.users import bearer

__all__ = [
    "MP4",
    "PNG",
    "completed_generation",
    "objects",
    "purchase",
    "ready_export",
    "reference",
]

MP4 = tiny_mp4()
PNG = bytes.fromhex("89504e470d0a1a0a") + b"\x00" * 64


def ready_export(api: httpx.Client, token: str, export_id: str, timeout: float = 30) -> dict:
    """The export once its builder (a background job) is done with it."""
    deadline = time.monotonic() + timeout
    while True:
        status = api.get(f"/privacy_export/privacy/exports/{export_id}", headers=bearer(token))
        assert status.status_code == 200, status.text
        if status.json()["status"] not in ("pending", "building") or time.monotonic() > deadline:
            return status.json()
        time.sleep(0.05)


def completed_generation(db: Database, user: uuid.UUID, prompt: str) -> uuid.UUID:
    gen = uuid.UUID(start(db, user, body=spec(prompt))["generation"]["id"])
    db.one("select * from izgens.mark_submitted(%s, %s)", (gen, f"cgt-{gen.hex}"))
    db.one("select * from izgens.claim_storing(%s)", (gen,))
    key = f"videos/{user}/{gen}.mp4"
    get_storage().client.put_object(
        Bucket=get_storage().bucket, Key=key, Body=MP4, ContentType="video/mp4"
    )
    db.one(
        "select * from izgens.complete_generation(%s, %s, 'e', %s, 'video/mp4')",
        (gen, key, len(MP4)),
    )
    return gen


def purchase(db: Database, user: uuid.UUID, ip: str) -> uuid.UUID:
    row = db.one(
        "insert into public.purchases (user_id, pack_id, credits, amount, currency, status, client_ip)"
        " values (%s, 'starter', 500, 5.00, 'USD', 'completed', %s) returning id",
        (user, ip),
    )
    assert row is not None
    db.execute(
        "insert into public.payment_events (purchase_id, order_number, status, body_sha256, payload)"
        " values (%s, %s, 'completed', %s, %s)",
        (
            row["id"],
            str(row["id"]),
            uuid.uuid4().hex,
            json.dumps({"order_number": str(row["id"]), "status": "completed"}),
        ),
    )
    db.one("select izgens.credit_purchase(%s)", (row["id"],))
    return row["id"]


def reference(db: Database, user: uuid.UUID, hours_old: int = 0) -> str:
    key = f"references/{user}/{uuid.uuid4().hex}.png"
    get_storage().client.put_object(
        Bucket=get_storage().bucket, Key=key, Body=PNG, ContentType="image/png"
    )
    db.execute(
        "insert into public.reference_uploads (key, user_id, kind, content_type, bytes, created_at, expires_at)"
        " values (%s, %s, 'image', 'image/png', %s, now() - make_interval(hours => %s),"
        " now() - make_interval(hours => %s) + interval '72 hours')",
        (key, user, len(PNG), hours_old, hours_old),
    )
    return key


def objects(prefix: str) -> list[str]:
    storage = get_storage()
    listing = storage.client.list_objects_v2(Bucket=storage.bucket, Prefix=prefix)
    return [o["Key"] for o in listing.get("Contents", [])]
