"""Dev-only stand-in for Supabase Auth: an ES256 key pair, its JWKS, and access tokens
shaped like Supabase's, so the functions run their real verification path locally."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["DevSigner"]

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
