"""Plisio callback signatures: `verify_hash` checked in constant time, and made (simulator).

Kept apart from `izgens.plisio` (which re-exports everything here) so the webhook can
verify a callback without importing httpx: the callback's cold start is a payment's
latency. The algorithm is `../shared/reference/plisio.md` §4.1.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

from izgens import jsonbody
from izgens.errors import InvalidRequest, MalformedJson

__all__ = ["InvalidSignature", "canonical_sha256", "sign_callback", "verify_callback"]

_HASH_RE = re.compile(r"[0-9a-fA-F]{40}")


class InvalidSignature(InvalidRequest):
    """A callback whose `verify_hash` is missing, malformed or wrong: nothing in it is trusted."""

    code = "invalid_signature"
    title = "Invalid callback signature"


def _mac(secret: str, message: str) -> str:
    # surrogatepass: a received body may escape an unpaired surrogate (\ud800), which UTF-8
    # cannot encode; such a body was never signed by Plisio and must fail as unsigned
    payload = message.encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode("utf-8"), payload, hashlib.sha1).hexdigest()


def _compact(fields: Mapping[str, Any], *, ensure_ascii: bool) -> str:
    # json never escapes "/", which is what Plisio's PHP does (JSON_UNESCAPED_SLASHES)
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=ensure_ascii)


def _canonical(fields: Mapping[str, Any]) -> str:
    """Keys sorted, compact separators, slashes and non-ASCII left raw, values as given;
    any `verify_hash` in `fields` left out: what Plisio signs (§4.1)."""
    body = {k: fields[k] for k in sorted(fields) if k != "verify_hash"}
    return _compact(body, ensure_ascii=False)


def sign_callback(fields: Mapping[str, Any], secret: str) -> str:
    """Plisio's `verify_hash` for a JSON callback, in its canonical form (the simulator
    signs with this)."""
    return _mac(secret, _canonical(fields))


def canonical_sha256(fields: Mapping[str, Any]) -> str:
    """What identifies a verified event: the sha256 of its canonical form. The same fields
    re-sent with other key order, spacing or escapes are the same event; `verify_hash`
    itself is not part of it."""
    return hashlib.sha256(_canonical(fields).encode("utf-8", "surrogatepass")).hexdigest()


def verify_callback(raw_body: bytes, secret: str) -> dict[str, Any]:
    """Check a JSON callback's `verify_hash` and return its other fields, values as received.

    Plisio signs the ksorted fields with raw UTF-8 (§4.1); the official Python SDK re-hashes
    the received key order with `\\uXXXX` escapes. Which one Plisio's servers produce for
    non-ASCII text is unconfirmed (§4.3), so each of those four serialisations is tried,
    every one keyed by the secret. Numbers are re-serialised by Python's rules; Plisio sends
    strings, and a body that does not survive that fails closed (re-check via the API).
    """
    if not secret:
        raise InvalidSignature("no Plisio secret is configured")
    try:
        data = jsonbody.parse(raw_body)
    except MalformedJson as exc:  # not UTF-8, not JSON, nested too deep
        raise InvalidSignature(f"the callback {exc.detail.removeprefix('the ')}") from None
    if not isinstance(data, dict):
        raise InvalidSignature("the callback body is not a JSON object")
    received = data.pop("verify_hash", None)
    if not isinstance(received, str) or not _HASH_RE.fullmatch(received):
        raise InvalidSignature("verify_hash is missing or malformed")
    received = received.lower()
    in_order = dict(data)
    in_key_order = dict(sorted(data.items()))
    candidates = dict.fromkeys(
        _compact(body, ensure_ascii=ascii_only)
        for body in (in_key_order, in_order)
        for ascii_only in (False, True)
    )
    matched = False
    for message in candidates:
        # no early exit: every candidate costs the same whether or not one matched
        matched |= hmac.compare_digest(_mac(secret, message), received)
    if not matched:
        raise InvalidSignature("verify_hash does not match the callback body")
    return data
