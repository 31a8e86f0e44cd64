"""The `[sim:...]` markers in a prompt (listed in the package docstring) and what they ask
of a create."""

from __future__ import annotations

import re
from collections.abc import Mapping

from izgens_local.byteplus_sim.errors import CODE_BY_STATUS, ApiError, status_for_code
from izgens_local.byteplus_sim.validation import Content

_MARKER = re.compile(r"\[sim:([a-z-]+)(?:=([^\]]*))?\]")


def markers(prompt: str) -> dict[str, str]:
    return {m.group(1): (m.group(2) or "") for m in _MARKER.finditer(prompt)}


def marker_rejection(marks: Mapping[str, str], content: Content) -> ApiError | None:
    if "reject" in marks:
        code = marks["reject"] or "InputTextSensitiveContentDetected"
        param = f"content[{content.text_index}]"
        if code.startswith("InputImage") and content.image_index is not None:
            param = f"content[{content.image_index}]"
        if code.startswith("InputVideo") and content.video_index is not None:
            param = f"content[{content.video_index}]"
        return ApiError(status_for_code(code), code, param=param)
    if "http" in marks:
        status = marker_status(marks["http"])
        return ApiError(status, CODE_BY_STATUS.get(status, "InternalServiceError"))
    return None


def marker_status(value: str) -> int:
    try:
        status = int(value)
    except ValueError:
        return 500
    return status if 400 <= status <= 599 else 500


def marker_delay(value: str | None, default: float) -> float:
    if value is None:
        return default
    try:
        return max(0.0, float(value))
    except ValueError:
        return default
