"""A callback's body as Plisio sends it: JSON or a form, signed with `verify_hash`."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl, urlencode, urlsplit

from izgens.plisio import sign_callback


def _php_serialize_flat(fields: dict[str, str]) -> str:
    """PHP serialize() of a flat string array, which form callbacks are signed over (§4.2)."""
    parts = [f"a:{len(fields)}:{{"]
    for key, value in fields.items():
        parts.append(f's:{len(key.encode())}:"{key}";s:{len(value.encode())}:"{value}";')
    return "".join(parts) + "}"


def encode_callback(
    fields: dict[str, str], secret: str, url: str
) -> tuple[bytes, str, dict[str, str]]:
    """The body Plisio would post: sorted fields, `verify_hash` last."""
    ordered = dict(sorted(fields.items()))
    if ("json", "true") in parse_qsl(urlsplit(url).query):
        sent = {**ordered, "verify_hash": sign_callback(ordered, secret)}
        body = json.dumps(sent, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return body, "application/json", sent
    mac = hmac.new(secret.encode(), _php_serialize_flat(ordered).encode(), hashlib.sha1)
    sent = {**ordered, "verify_hash": mac.hexdigest()}
    return urlencode(sent).encode("ascii"), "application/x-www-form-urlencoded", sent
