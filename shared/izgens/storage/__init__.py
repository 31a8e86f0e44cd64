"""The bucket: every key layout, presigned URL, upload check, copy and event parse we do on it.

One S3 bucket (AWS S3, Supabase Storage's S3 endpoint, or moto in the dev stack) holds

    references/{user}/{uuid4 hex}.{ext}   user uploads, via a presigned POST or PUT
    inputs/{user}/{generation}/{n}.{ext}   a generation's own copy of its n-th reference:
                                           what is priced and what the provider fetches
    videos/{user}/{generation}.mp4         copied from the provider's expiring URL
    exports/{user}/{export}.json           privacy exports, streamed

boto3 and httpx are imported on first use only: cold start is part of the product. Callers
never see botocore or httpx exceptions; they get the `izgens.errors` tree:

    InvalidRequest
    ├── UnsafeURL            copy_from_url refused the URL before (or instead of) fetching it
    └── UnexpectedContent    the fetched body is not what it claims to be (type, magic bytes)
    NotFound                 missing object, or a key that is not the caller's own
    PayloadTooLarge          over the limit for that type, or over max_bytes while streaming
    ProviderUnavailable      S3 or the video host failed in a way worth retrying later

The files: `keys` (layouts, upload types, what a key may be), `presign` (SigV4 links and
uploads, byte-identical to botocore's), `credentials` (the keys that sign them),
`references` (upload forms and the check of an upload at use), `urls` (which URLs we fetch
from), `copier` (the streaming copy into the bucket), `client` (the Storage class).
"""

from __future__ import annotations

from izgens.storage.client import Storage, get_storage, reset_storage
from izgens.storage.copier import UnexpectedContent
from izgens.storage.credentials import (
    ContainerCredentials,
    container_credentials_uri,
    reset_credentials,
)
from izgens.storage.keys import (
    DEFAULT_PART_SIZE,
    MIN_PART_SIZE,
    UPLOAD_EXPIRY_SECONDS,
    UPLOAD_TYPES,
    ObjectCreated,
    ObjectInfo,
    PresignedUpload,
    ReferenceInfo,
    UploadMethod,
    UploadType,
)
from izgens.storage.presign import LinkSigner, presign_get_url, presign_put_url
from izgens.storage.urls import UnsafeURL

__all__ = [
    "ContainerCredentials",
    "DEFAULT_PART_SIZE",
    "LinkSigner",
    "MIN_PART_SIZE",
    "ObjectCreated",
    "ObjectInfo",
    "PresignedUpload",
    "ReferenceInfo",
    "Storage",
    "UPLOAD_EXPIRY_SECONDS",
    "UPLOAD_TYPES",
    "UnexpectedContent",
    "UnsafeURL",
    "UploadMethod",
    "UploadType",
    "container_credentials_uri",
    "get_storage",
    "presign_get_url",
    "presign_put_url",
    "reset_credentials",
    "reset_storage",
]
