"""Reference uploads: the row and the presigned POST, never the bytes (browsers upload
straight to the bucket)."""

from __future__ import annotations

import uuid

from izgens.config import get_settings
from izgens.db import get_database
from izgens.errors import InvalidRequest
from izgens.storage import UPLOAD_TYPES, PresignedUpload, get_storage

__all__ = ["create_upload"]


def create_upload(
    user_id: uuid.UUID, content_type: str, size: int, *, client_ip: str | None = None
) -> PresignedUpload:
    """Gates, rate limits (user and address) and the row in one SQL call, then a POST
    policy pinned to the key, the type and the size. The filename never becomes part of
    the key."""
    upload_type = UPLOAD_TYPES.get(content_type)
    if upload_type is None:
        raise InvalidRequest(f"content_type must be one of {', '.join(UPLOAD_TYPES)}")
    settings = get_settings()
    storage = get_storage()
    presigned = storage.presign_upload(user_id, content_type, size)
    get_database().one(
        "select * from izgens.register_upload(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            user_id,
            presigned["key"],
            upload_type.kind,
            content_type,
            size,
            settings.reference_retention_hours,
            settings.rate_upload_user,
            settings.rate_window_seconds,
            client_ip,
            settings.rate_upload_ip,
        ),
    )
    return presigned
