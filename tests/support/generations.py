"""Generations started straight from SQL (izgens.start_generation), as the generate
function starts them, for the tests of the rules behind it: the default spec, its price."""

from __future__ import annotations

import hashlib
import json
import uuid

from izgens.db import Database

__all__ = ["TOKENS", "price", "spec", "start"]

TOKENS = 103_818  # seedance-1-0-pro-fast 720p 5 s, the default generation


def spec(prompt: str = "a paper boat", **over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "prompt": prompt,
        "model": "seedance-1-0-pro-fast-251015",
        "resolution": "720p",
        "ratio": "16:9",
        "duration": 5,
        "generate_audio": False,
        "reference_keys": [],
    }
    base.update(over)
    return base


def start(db: Database, user: uuid.UUID, key: str | None = None, body: dict | None = None) -> dict:
    body = body or spec()
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    row = db.one(
        "select izgens.start_generation(%s, %s, %s, %s, %s, 0, %s, %s, %s, %s) as r",
        (
            user,
            key or uuid.uuid4().hex,
            digest,
            json.dumps(body),
            TOKENS,
            "203.0.113.7",
            10_000,
            10_000,
            60,
        ),
        idempotent=False,
    )
    assert row is not None
    return row["r"]


def price(db: Database) -> int:
    row = db.one(
        "select izgens.price_credits('seedance-1-0-pro-fast-251015', '720p', false, %s, 0) as c",
        (TOKENS,),
    )
    assert row is not None
    return int(row["c"])
