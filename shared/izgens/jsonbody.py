"""JSON read from raw bytes (the provider callbacks, which verify bytes and so cannot go
through pydantic): one parser that turns every malformed body into `MalformedJson`.

`json.loads` alone lets three kinds of body through as something other than ValueError or
as something later code cannot handle: nesting a few thousand levels deep (RecursionError
in the parser, or in any recursive walk or `json.dumps` of what it returned), bytes that
are not UTF-8, and numbers that are not finite (`NaN`, `Infinity`, `1e400`), which jsonb
refuses. The first two are refused here; `storable` makes the third safe to keep.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from izgens.errors import MalformedJson

__all__ = ["MAX_DEPTH", "parse", "storable"]

# far beyond any callback we receive (Plisio's is flat, BytePlus's two levels deep)
MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def parse(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The document in `raw` (UTF-8 JSON, at most `max_depth` containers deep)."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise MalformedJson("the body is not JSON") from None
    if _depth_exceeds(document, max_depth):
        raise MalformedJson(f"the body nests deeper than {max_depth} levels")
    return document


def _depth_exceeds(document: Any, limit: int) -> bool:
    pending = [(document, 1)]
    while pending:  # iterative: the depth being checked costs no stack
        item, level = pending.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        pending.extend((child, level + 1) for child in children)
    return False


def storable(value: Any) -> Any:
    """`value` as jsonb can hold it: NUL and unpaired surrogates in text become U+FFFD,
    non-finite numbers become the text Python writes for them ("NaN", "Infinity"), so a
    verified event with either is kept, never lost to a database error. Call on parsed
    documents only (depth already bounded)."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return json.dumps(value)
    if isinstance(value, dict):
        return {_text(k): storable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [storable(v) for v in value]
    return value


def _text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value)
