"""The keys presigned links are signed with: explicit ones, the Lambda role's from the environment or the container credentials endpoint (SnapStart, ECS), else botocore's own chain."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from izgens.clients import Shared
from izgens.errors import (
    ProviderUnavailable,
)

__all__ = ["ContainerCredentials", "container_credentials_uri", "reset_credentials"]
from izgens.storage.presign import _aws_endpoint

_ECS_HOST = "http://169.254.170.2"

REFRESH_BEFORE_SECONDS = 5 * 60  # botocore's own advisory refresh window for these


def container_credentials_uri(env: Mapping[str, str]) -> str | None:
    """The endpoint Lambda (with SnapStart) and ECS serve the role's credentials from."""
    if env.get("AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        return env["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    if env.get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"):
        return _ECS_HOST + env["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"]
    return None


class ContainerCredentials:
    """The role's temporary credentials from the container credentials endpoint, kept
    until five minutes before they expire, then fetched again (one GET; the standard
    library, so signing a download link imports neither boto3 nor botocore)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, str, str | None] | None = None
        self._expires = 0.0

    def get(self, env: Mapping[str, str]) -> tuple[str, str, str | None]:
        with self._lock:
            if self._cached is None or self._clock() >= self._expires - REFRESH_BEFORE_SECONDS:
                self._cached, self._expires = self._fetch(env)
            return self._cached

    def _fetch(self, env: Mapping[str, str]) -> tuple[tuple[str, str, str | None], float]:
        import urllib.request

        uri = container_credentials_uri(env)
        if uri is None:
            raise ProviderUnavailable("no container credentials endpoint is configured")
        request = urllib.request.Request(uri, headers={"Accept": "application/json"})
        token = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        token_file = env.get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
        try:
            if token_file and not token:
                with open(token_file, encoding="utf-8") as handle:
                    token = handle.read().strip()
            if token:
                request.add_header("Authorization", token)
            with urllib.request.urlopen(request, timeout=2) as answer:  # noqa: S310 - env's URI
                body = json.loads(answer.read(64 * 1024))
            expires = datetime.fromisoformat(str(body["Expiration"]).replace("Z", "+00:00"))
            found = (str(body["AccessKeyId"]), str(body["SecretAccessKey"]), body.get("Token"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ProviderUnavailable("cannot read the container credentials") from exc
        return found, expires.timestamp()


# the role's keys, per process; reset after a SnapStart restore (the snapshot's may be stale)
_container_credentials = Shared("container credentials", ContainerCredentials)
reset_credentials = _container_credentials.reset


class _Signing:
    """The credentials of this bucket's presigned links."""

    def _signing(self) -> dict[str, Any]:
        """Where and as whom every presigned link of this bucket is signed."""
        access_key, secret_key, token = self._signing_credentials()
        return {
            "endpoint": self.endpoint_url or _aws_endpoint(self.region),
            "bucket": self.bucket,
            "region": self.region,
            "access_key": access_key,
            "secret_key": secret_key,
            "token": token,
        }

    def _signing_credentials(self) -> tuple[str, str, str | None]:
        """Explicit keys; else the Lambda role's, from the environment or (SnapStart, ECS)
        from the container credentials endpoint, both without botocore; else botocore's
        own chain (a developer's AWS profile), through its public API."""
        if self._access_key_id and self._secret_access_key:
            return self._access_key_id, self._secret_access_key, None
        env = os.environ
        if env.get("AWS_ACCESS_KEY_ID") and env.get("AWS_SECRET_ACCESS_KEY"):
            return (
                env["AWS_ACCESS_KEY_ID"],
                env["AWS_SECRET_ACCESS_KEY"],
                env.get("AWS_SESSION_TOKEN"),
            )
        if container_credentials_uri(env):
            return _container_credentials.get().get(env)
        from botocore.exceptions import BotoCoreError
        from botocore.session import Session

        try:
            found = Session().get_credentials()
            frozen = found.get_frozen_credentials() if found is not None else None
        except BotoCoreError as exc:
            raise ProviderUnavailable("no credentials to sign the download") from exc
        if frozen is None:
            raise ProviderUnavailable("no credentials to sign the download")
        return frozen.access_key, frozen.secret_key, frozen.token
