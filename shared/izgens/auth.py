"""Supabase access tokens, verified locally.

Asymmetric keys (ES256/RS256) come from the project's JWKS, cached and refreshed when a
token names an unknown `kid`; the legacy HS256 secret is accepted only when configured.
The token's `alg` never chooses the verification method on its own: each key type has a
pinned list, so `none` and HS256-signed-with-the-public-key are refused.

A token verified once is remembered (its exact string, at most VERIFIED_CACHE_SECONDS and
never past its `exp`), so a warm container checks a user's signature once, not on every
request: the signature check was a third of a warm request. A key removed from the JWKS
stops working for remembered tokens at most that much later, as with the JWKS cache itself.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from izgens.clients import Shared
from izgens.errors import NotConfigured, ProviderUnavailable, Unauthenticated

__all__ = ["TokenVerifier", "User", "get_verifier", "reset_verifier"]

ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
AUDIENCE = "authenticated"
VERIFIED_CACHE_SECONDS = 300
VERIFIED_CACHE_SIZE = 1024


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    email: str | None
    session_id: str | None
    claims: dict[str, Any] = field(repr=False)


class TokenVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        hs256_secret: str | None = None,
        leeway: int = 30,
        jwks_cache_seconds: int = 600,
        jwks_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.hs256_secret = hs256_secret
        self.leeway = leeway
        self._jwks_cache_seconds = jwks_cache_seconds
        self._jwks_timeout = jwks_timeout
        self._jwks_client: Any = None
        self._lock = threading.Lock()
        self._clock = clock
        self._verified: OrderedDict[str, tuple[User, float]] = OrderedDict()

    def _jwks(self) -> Any:
        if self._jwks_client is None:
            import jwt

            with self._lock:
                if self._jwks_client is None:
                    self._jwks_client = jwt.PyJWKClient(
                        self.jwks_url or "",
                        cache_jwk_set=True,
                        lifespan=self._jwks_cache_seconds,
                        timeout=self._jwks_timeout,
                    )
        return self._jwks_client

    def _key_for(self, header: dict[str, Any]) -> tuple[Any, list[str]]:
        import jwt

        alg = header.get("alg")
        if alg == "HS256":
            if not self.hs256_secret:
                raise Unauthenticated("HS256 tokens are not accepted")
            return self.hs256_secret, ["HS256"]
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise Unauthenticated("unsupported token algorithm")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthenticated("token has no usable key id")
        if not self.jwks_url:
            raise NotConfigured("no JWKS to verify asymmetric tokens (SUPABASE_URL)")
        try:
            signing_key = self._jwks().get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            # Supabase Auth is unreachable: not the caller's fault (a 503, not counted as
            # a failed sign-in)
            raise ProviderUnavailable("Supabase Auth's signing keys are unavailable") from exc
        except jwt.PyJWKClientError as exc:
            raise Unauthenticated("unknown signing key") from exc
        key_alg = getattr(signing_key, "algorithm_name", None)
        if key_alg and key_alg != alg:
            raise Unauthenticated("token algorithm does not match its key")
        return signing_key.key, [alg]

    def verify(self, token: str) -> User:
        """The user a valid token names; `Unauthenticated` otherwise (see the module)."""
        now = self._clock()
        with self._lock:
            remembered = self._verified.get(token)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        user = self._verify(token)
        until = min(float(user.claims["exp"]) + self.leeway, now + VERIFIED_CACHE_SECONDS)
        with self._lock:
            self._verified[token] = (user, until)
            while len(self._verified) > VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return user

    def _verify(self, token: str) -> User:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise Unauthenticated("malformed token") from exc
        key, algorithms = self._key_for(header)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=AUDIENCE,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid token") from exc
        if claims.get("role") != AUDIENCE:
            raise Unauthenticated("token is not a user token")
        anonymous = claims.get("is_anonymous")
        if anonymous is not None and anonymous is not False:
            # any other value ("true", 1, "false", {}) is not a plain "signed up" either
            raise Unauthenticated("anonymous sessions cannot use this service")
        try:
            user_id = uuid.UUID(str(claims["sub"]))
        except ValueError as exc:
            raise Unauthenticated("invalid subject") from exc
        email = claims.get("email")
        session = claims.get("session_id")
        return User(
            id=user_id,
            email=email if isinstance(email, str) and email else None,
            session_id=session if isinstance(session, str) else None,
            claims=claims,
        )


def _build_verifier() -> TokenVerifier:
    from izgens.config import get_settings

    s = get_settings()
    secret = s.supabase_jwt_secret.get_secret_value() if s.supabase_jwt_secret else None
    return TokenVerifier(
        issuer=s.supabase_jwt_issuer, jwks_url=s.supabase_jwks_url or None, hs256_secret=secret
    )


# one per process: its JWKS cache and the tokens it verified serve every request
_verifier = Shared("token verifier", _build_verifier)
get_verifier = _verifier.get
reset_verifier = _verifier.reset
