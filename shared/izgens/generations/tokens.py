"""Per-generation callback tokens (a leaked URL is good for nothing else), the ids BytePlus echoes back on every task, and the request hash behind Idempotency-Key."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import TYPE_CHECKING, Any

from izgens import errors

if TYPE_CHECKING:
    from izgens.byteplus import Task

__all__ = ["callback_token", "verify_callback_token"]


def callback_token(generation_id: uuid.UUID, key: str) -> str:
    mac = hmac.new(key.encode(), f"byteplus-callback:{generation_id}".encode(), hashlib.sha256)
    return f"{generation_id.hex}.{mac.hexdigest()[:40]}"


def verify_callback_token(token: str, key: str) -> uuid.UUID:
    """The generation a callback token names; `Unauthenticated` when forged (constant time)."""
    head, _, _ = token.partition(".")
    try:
        generation_id = uuid.UUID(hex=head)
    except ValueError:
        raise errors.Unauthenticated("invalid callback token") from None
    # compare_digest raises TypeError on non-ASCII str: compare bytes, any text encodes
    given = token.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(callback_token(generation_id, key).encode(), given):
        raise errors.Unauthenticated("invalid callback token")
    return generation_id


def safety_identifier(user_id: uuid.UUID, generation_id: uuid.UUID) -> str:
    """What BytePlus echoes on every task: a hashed end-user id (their abuse tracking) and
    our generation id (how reconciliation finds a task whose create answer was lost)."""
    user_hash = hashlib.sha256(f"izgens-user:{user_id}".encode()).hexdigest()[:24]
    return f"{user_hash}-{generation_id.hex}"


def _generation_of(task: Task) -> uuid.UUID | None:
    ident = task.safety_identifier or ""
    try:
        return uuid.UUID(hex=ident.rsplit("-", 1)[-1]) if "-" in ident else None
    except ValueError:
        return None


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
