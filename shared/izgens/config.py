"""Typed settings, read once from the environment (or AWS Secrets Manager).

`get_settings()` is cached and is only called when a request or job first needs
configuration, so importing a module never reads the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from izgens.clients import Shared, reset_all

__all__ = ["DEV_SECRETS", "Settings", "get_settings", "reset_settings"]

# Values the dev stack uses; refused anywhere else so a copy-pasted .env never reaches prod.
DEV_SECRETS = frozenset(
    {
        "dev-byteplus-key",
        "dev-plisio-secret",
        "dev-callback-signing-key-000000000000",
        "dev-s3-secret",
        "dev-supabase-service-key",
    }
)

SECRET_FIELDS = (
    "supabase_jwt_secret",
    "supabase_service_key",
    "byteplus_api_key",
    "plisio_secret_key",
    "callback_signing_key",
    "aws_secret_access_key",
    "s3_secret_access_key",
)


class Settings(BaseModel):
    """Every setting; the environment variable is the field name upper-cased (or its alias)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=False)

    env: Literal["dev", "test", "prod"] = Field("prod", alias="IZGENS_ENV")
    log_level: str = "INFO"

    database_url: str = ""
    db_pool_size: int = Field(1, ge=1, le=64)
    db_pool_timeout: float = Field(10.0, gt=0)

    supabase_url: str = ""
    supabase_jwks_url: str = ""
    supabase_jwt_issuer: str = ""
    supabase_jwt_secret: SecretStr | None = None
    supabase_service_key: SecretStr | None = None

    s3_bucket: str = "izgens"
    s3_endpoint_url: str = ""
    aws_region: str = Field("us-east-1", alias="AWS_REGION")
    aws_access_key_id: str | None = Field(None, alias="AWS_ACCESS_KEY_ID")
    aws_secret_access_key: SecretStr | None = Field(None, alias="AWS_SECRET_ACCESS_KEY")
    # keys for an S3-compatible endpoint (Supabase Storage): on Lambda the AWS_* variables
    # hold the role's own credentials, so these have names of their own
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    # how browsers upload references: "post" (a presigned POST policy; AWS S3) or "put" (a
    # presigned PUT pinned to type and length; Supabase Storage has no POST). Unset: "put"
    # for a Supabase Storage endpoint, else "post"
    s3_upload_method: Literal["post", "put"] | None = None

    byteplus_api_key: SecretStr | None = None
    byteplus_base_url: str = "https://ark.ap-southeast.bytepluses.com/api/v3"
    # per request; a create that outlives it is ambiguous and left for reconciliation
    byteplus_timeout_seconds: float = Field(15.0, gt=0, le=120)
    byteplus_video_hosts: list[str] = [
        ".bytepluses.com",
        ".volces.com",
        ".byteplusapi.com",
    ]

    plisio_secret_key: SecretStr | None = None
    plisio_base_url: str = "https://api.plisio.net/api/v1"

    # where the outside world reaches each function: name=url pairs, comma separated
    public_base_urls: dict[str, str] = {}
    frontend_url: str = ""
    callback_signing_key: SecretStr | None = None

    deletion_grace_hours: int = Field(72, ge=0, le=24 * 29)
    reference_retention_hours: int = Field(72, ge=1)
    payment_retention_years: int = Field(7, ge=1)
    export_ttl_hours: int = Field(24, ge=1)
    # the Lambda (name:alias) that builds exports, invoked asynchronously; unset: a worker
    # thread of the process that took the request (dev stack, container)
    export_builder_function: str = ""
    export_link_seconds: int = Field(600, ge=30, le=3600)
    video_link_seconds: int = Field(900, ge=30, le=3600 * 12)

    # fixed windows; each limit is the number of admitted attempts per window (0: none)
    rate_window_seconds: int = Field(60, ge=1)
    rate_generate_user: int = Field(10, ge=0)
    rate_generate_ip: int = Field(30, ge=0)
    rate_upload_user: int = Field(30, ge=0)
    rate_upload_ip: int = Field(90, ge=0)
    rate_checkout_user: int = Field(10, ge=0)
    rate_checkout_ip: int = Field(30, ge=0)
    rate_export_user: int = Field(3, ge=0)
    rate_export_ip: int = Field(10, ge=0)
    # presented-but-invalid access tokens per address; past it 429 instead of 401
    rate_auth_failures_ip: int = Field(60, ge=0)

    max_body_bytes: int = Field(64 * 1024, ge=1024)
    cors_origins: list[str] = []
    # Behind a proxy (the container): where the client address comes from. A header the
    # proxy overwrites (Railway: X-Real-IP) wins; else the entry the outermost of
    # TRUSTED_PROXY_HOPS appending proxies added to X-Forwarded-For; else the socket peer.
    client_ip_header: str = Field("", pattern=r"^[A-Za-z0-9-]*$")
    trusted_proxy_hops: int = Field(0, ge=0, le=10)

    # nothing waits forever: a generation waiting for provider capacity, and a purchase
    # that never got an invoice, are ended after these (failed and refunded, expired)
    generation_max_wait_minutes: int = Field(30, ge=1)
    # the provider account's queued-task cap (reference §7: 120 per master account); the
    # dispatcher does not send into a queue it knows is full
    byteplus_max_queued: int = Field(120, ge=1)
    purchase_invoice_timeout_hours: int = Field(24, ge=1)

    # the container (izgens.container) runs the cleanup jobs in-process this often, 0 = off;
    # on AWS the EventBridge schedule invokes the `cleanup` function instead
    cleanup_interval_seconds: float = Field(300, ge=0)

    @field_validator("public_base_urls", mode="before")
    @classmethod
    def _parse_pairs(cls, value: object) -> object:
        if isinstance(value, str):
            if value.strip().startswith("{"):
                return json.loads(value)
            pairs = (item.split("=", 1) for item in value.split(",") if item.strip())
            return {k.strip(): v.strip().rstrip("/") for k, v in pairs}
        return value

    @field_validator("cors_origins", "byteplus_video_hosts", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @model_validator(mode="after")
    def _defaults_and_guards(self) -> Settings:
        base = self.supabase_url.rstrip("/")
        if base and not self.supabase_jwt_issuer:
            self.supabase_jwt_issuer = f"{base}/auth/v1"
        if base and not self.supabase_jwks_url:
            self.supabase_jwks_url = f"{base}/auth/v1/.well-known/jwks.json"
        if self.env == "prod":
            for name in SECRET_FIELDS:
                secret = getattr(self, name)
                if secret is not None and secret.get_secret_value() in DEV_SECRETS:
                    raise ValueError(f"{name.upper()} holds a dev value outside the dev stack")
        return self

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], **overrides: str) -> Settings:
        """Read each field from its variable (plain pydantic, no settings framework: the
        import is part of every cold start)."""
        if environ.get("TRUST_FORWARDED_FOR"):
            # it took the leftmost X-Forwarded-For entry, which the client writes itself
            raise ValueError(
                "TRUST_FORWARDED_FOR is gone: set CLIENT_IP_HEADER or TRUSTED_PROXY_HOPS"
                " (docs/deploy.md, Container)"
            )
        values: dict[str, object] = {}
        for name, info in cls.model_fields.items():
            variable = info.alias or name.upper()
            if environ.get(variable, "") != "":  # an empty variable counts as unset
                values[name] = environ[variable]
        values.update(overrides)
        return cls.model_validate(values)

    @property
    def upload_method(self) -> Literal["post", "put"]:
        if self.s3_upload_method is not None:
            return self.s3_upload_method
        parts = urlsplit(self.s3_endpoint_url)
        supabase = (parts.hostname or "").endswith(".supabase.co") or parts.path.rstrip(
            "/"
        ).endswith("/storage/v1/s3")
        return "put" if supabase else "post"

    def public_url(self, function: str) -> str:
        try:
            return self.public_base_urls[function]
        except KeyError:
            raise ValueError(f"PUBLIC_BASE_URLS has no entry for {function!r}") from None


def _secrets_manager_overlay() -> dict[str, str]:
    """Values from the JSON secret named by IZGENS_SECRETS_ARN (keys as env names)."""
    arn = os.environ.get("IZGENS_SECRETS_ARN")
    if not arn:
        return {}
    import boto3  # only deployments that keep secrets there pay for the import

    raw = boto3.client("secretsmanager").get_secret_value(SecretId=arn)["SecretString"]
    values = json.loads(raw)
    fields = {info.alias or name.upper(): name for name, info in Settings.model_fields.items()}
    return {fields[k]: str(v) for k, v in values.items() if k in fields and k not in os.environ}


# read once per process; reset when the environment changes (tests, the dev stack)
_settings = Shared(
    "settings", lambda: Settings.from_environ(os.environ, **_secrets_manager_overlay())
)
get_settings = _settings.get


def reset_settings() -> None:
    """The environment changed (tests, the dev stack): forget the settings and every
    process-wide client built from them."""
    reset_all()
