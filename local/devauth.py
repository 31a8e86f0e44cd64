"""Dev-only stand-in for Supabase Auth: an ES256 key pair, its JWKS, access tokens shaped
like Supabase's (so the functions run their real verification path locally), and the one
admin route the purge calls, answering the official client exactly as Supabase does."""

from __future__ import annotations

import hmac
import json
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

if TYPE_CHECKING:
    from fastapi import Response

__all__ = ["DevSigner", "admin_delete_user"]

KID = "izgens-dev-es256"


class DevSigner:
    def __init__(self, issuer: str, key_path: Path | None = None) -> None:
        self.issuer = issuer
        self._key = self._load_or_create(key_path)

    @staticmethod
    def _load_or_create(path: Path | None) -> ec.EllipticCurvePrivateKey:
        if path is not None and path.exists():
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return key
        key = ec.generate_private_key(ec.SECP256R1())
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            path.chmod(0o600)
        return key

    def jwks(self) -> dict[str, Any]:
        import jwt

        jwk = jwt.algorithms.ECAlgorithm.to_jwk(self._key.public_key(), as_dict=True)
        jwk.update({"kid": KID, "alg": "ES256", "use": "sig", "key_ops": ["verify"]})
        return {"keys": [jwk]}

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a token this signer issued (any audience); raises PyJWT's errors."""
        import jwt

        return jwt.decode(
            token, self._key.public_key(), algorithms=["ES256"], options={"verify_aud": False}
        )

    def token(
        self,
        user_id: uuid.UUID,
        email: str | None,
        *,
        ttl: int = 3600,
        kid: str = KID,
        claims: dict[str, Any] | None = None,
    ) -> str:
        """A Supabase-shaped access token; `claims` overrides fields (tests forge with it)."""
        import jwt

        now = int(time.time())
        payload: dict[str, Any] = {
            "iss": self.issuer,
            "aud": "authenticated",
            "sub": str(user_id),
            "role": "authenticated",
            "email": email or "",
            "phone": "",
            "aal": "aal1",
            "session_id": str(uuid.uuid4()),
            "is_anonymous": False,
            "iat": now,
            "exp": now + ttl,
        }
        payload.update(claims or {})
        return jwt.encode(payload, self._key, algorithm="ES256", headers={"kid": kid})


# ---------------------------------------------------------------------------------------
# Auth's admin API: `DELETE /auth/v1/admin/users/{id}` as Supabase answers it
#
# In front of Auth, Supabase's API gateway wants the project's key in `apikey` (401 with
# its own `{"message", "hint"}` body otherwise); with a secret key (`sb_secret_…`) the
# bearer token is that same key, which the gateway exchanges for a service_role JWT.
# Auth then checks the bearer's role (supabase/auth internal/api/middleware.go
# requireAdminCredentials, admin.go loadUser and adminUserDelete) and answers errors in
# the shape the client asked for: `X-Supabase-Api-Version: 2024-01-01` (what supabase-py
# sends) gets `{"code": "<error_code>", "message"}` and the header echoed back; no
# version gets `{"code": <status>, "error_code", "msg"}`. `x-sb-error-code` either way.

ADMIN_ROLES = ("service_role", "supabase_admin")
API_VERSION_HEADER = "X-Supabase-Api-Version"


def _auth_error(headers: Mapping[str, str], status: int, code: str, message: str) -> Response:
    from fastapi.responses import JSONResponse

    version = headers.get(API_VERSION_HEADER, "")
    extra = {"x-sb-error-code": code}
    if version >= "2024-01-01" and len(version) == 10:
        extra[API_VERSION_HEADER] = "2024-01-01"
        body: dict[str, Any] = {"code": code, "message": message}
    else:
        body = {"code": status, "error_code": code, "msg": message}
    return JSONResponse(body, status_code=status, headers=extra)


def _gateway_refusal(message: str, hint: str) -> Response:
    from fastapi.responses import JSONResponse

    return JSONResponse({"message": message, "hint": hint}, status_code=401)


def admin_delete_user(
    signer: DevSigner, headers: Mapping[str, str], user_id: str, body: bytes
) -> Response:
    """Hard delete (cascading to identities, sessions and every izgens row, as on Supabase),
    or with `{"should_soft_delete": true}` what Auth's soft delete keeps: the row, marked
    deleted and stripped of email, phone and metadata, its identities and sessions gone."""
    from fastapi.responses import JSONResponse

    from izgens.config import get_settings
    from izgens.db import get_database

    configured = get_settings().supabase_service_key
    key = configured.get_secret_value() if configured is not None else None
    given = headers.get("apikey")
    if not given:
        return _gateway_refusal(
            "No API key found in request", "No `apikey` request header or url param was found."
        )
    if key is None or not hmac.compare_digest(given.encode(), key.encode()):
        return _gateway_refusal(
            "Invalid API key", "Double check your Supabase `anon` or `service_role` API key."
        )
    authorization = headers.get("authorization", "")
    scheme, _, bearer = authorization.partition(" ")
    if scheme.lower() != "bearer" or not bearer.strip():
        return _auth_error(
            headers, 401, "no_authorization", "This endpoint requires a valid Bearer token"
        )
    bearer = bearer.strip()
    if not hmac.compare_digest(bearer.encode(), key.encode()):
        import jwt

        try:
            role = signer.claims(bearer).get("role")
        except jwt.PyJWTError as exc:
            return _auth_error(
                headers,
                403,
                "bad_jwt",
                f"invalid JWT: unable to parse or verify signature, {exc}",
            )
        if role not in ADMIN_ROLES:
            return _auth_error(headers, 403, "not_admin", "User not allowed")
    try:
        target = uuid.UUID(user_id)
    except ValueError:
        return _auth_error(headers, 404, "validation_failed", "user_id must be an UUID")
    soft = False
    if body:
        try:
            params = json.loads(body)
        except ValueError as exc:
            return _auth_error(
                headers, 400, "bad_json", f"Could not parse request body as JSON: {exc}"
            )
        soft = isinstance(params, dict) and params.get("should_soft_delete") is True
    db = get_database()
    found = db.one("select deleted_at from auth.users where id = %s", (target,))
    if found is None:
        return _auth_error(headers, 404, "user_not_found", "User not found")
    if soft:
        if found["deleted_at"] is None:
            with db.connection() as conn, conn.transaction():
                conn.execute(
                    "update auth.users set deleted_at = now(), email = null, phone = null,"
                    " raw_user_meta_data = '{}', raw_app_meta_data = '{}' where id = %s",
                    (target,),
                )
                conn.execute("delete from auth.identities where user_id = %s", (target,))
                conn.execute("delete from auth.sessions where user_id = %s", (target,))
    else:
        db.execute("delete from auth.users where id = %s", (target,))
    return JSONResponse({}, status_code=200)
