"""Opaque cursors for `?limit=&cursor=` lists: `{"items": [...], "next_cursor": ...}`."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from izgens.errors import InvalidRequest

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Page", "decode_cursor", "encode_cursor"]

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(*values: Any) -> str:
    plain = [v.isoformat() if isinstance(v, datetime) else str(v) for v in values]
    return base64.urlsafe_b64encode(json.dumps(plain).encode()).decode().rstrip("=")


_PARSERS: dict[type, Callable[[str], Any]] = {
    int: int,
    datetime: datetime.fromisoformat,
    uuid.UUID: uuid.UUID,
}


def decode_cursor(cursor: str | None, types: tuple[type, ...]) -> list[Any] | None:
    """The cursor's values parsed to `types`, or None for the first page.

    Anything forged is a 422 here, before it can reach SQL as a malformed literal."""
    if not cursor:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError("wrong arity")
        parsed = [_PARSERS[t](v) for t, v in zip(types, values, strict=True) if isinstance(v, str)]
        if len(parsed) != len(types):
            raise ValueError("wrong value types")
    except (ValueError, TypeError, OverflowError, UnicodeDecodeError) as exc:
        raise InvalidRequest("invalid cursor") from exc
    for value in parsed:
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise InvalidRequest("invalid cursor")
        if isinstance(value, datetime) and value.tzinfo is None:
            raise InvalidRequest("invalid cursor")
    return parsed
