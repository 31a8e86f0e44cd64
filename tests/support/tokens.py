"""Access tokens that must never authenticate, each wrong in one way, made from a good one
of the dev signer (so a test that passes them proves the verifier, not a typo)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.conftest import DevServer

__all__ = ["FORGERIES", "forge", "forged_tokens"]

KID = "izgens-dev-es256"  # the dev signer's key id: forgeries claim to be its tokens
REQUIRED = ("exp", "iat", "sub", "aud", "iss")  # what izgens.auth requires of a token


@dataclass(frozen=True)
class _Good:
    """A valid token of `user` taken apart, to forge from."""

    dev: DevServer
    user: uuid.UUID
    header: str
    payload: str
    signature: str
    claims: dict[str, Any]

    @classmethod
    def of(cls, dev: DevServer, user: uuid.UUID) -> _Good:
        header, payload, signature = dev.token(user).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return cls(dev, user, header, payload, signature, claims)

    def token(self, **kw: Any) -> str:
        return self.dev.token(self.user, **kw)

    def signed(self, claims: dict[str, Any], key: Any = None) -> str:
        """ES256 under the dev key id, with the dev key unless another is given."""
        import jwt

        key = key or self.dev.signer._key  # type: ignore[attr-defined]
        return jwt.encode(claims, key, algorithm="ES256", headers={"kid": KID})

    def without(self, claim: str) -> str:
        return self.signed({k: v for k, v in self.claims.items() if k != claim})


def _stranger(good: _Good) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    return good.signed(good.claims, ec.generate_private_key(ec.SECP256R1()))


def _flipped(good: _Good) -> str:
    end = "AA" if not good.signature.endswith("AA") else "BB"
    return f"{good.header}.{good.payload}.{good.signature[:-2]}{end}"


def _guessable_hs256(good: _Good) -> str:
    import jwt

    secret = "super-secret-jwt-token-with-at-least-32-characters-long"
    return jwt.encode(good.claims, secret, algorithm="HS256")


def _hs256_with_public_key(good: _Good) -> str:
    """The algorithm-confusion forgery: HS256 keyed with the public key (PyJWT will not
    sign it, an attacker will)."""
    from cryptography.hazmat.primitives import serialization

    public = good.dev.signer._key.public_key().public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{_b64(good.claims)}"
    mac = hmac.new(public, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _now() -> int:
    return int(time.time())


# by what is wrong with the token; the first is merely expired
FORGERIES: dict[str, Callable[[_Good], str]] = {
    "expired": lambda g: g.token(claims={"iat": _now() - 7200, "exp": _now() - 3600}),
    "not yet valid": lambda g: g.token(claims={"nbf": _now() + 3600}),
    "wrong audience": lambda g: g.token(claims={"aud": "service_role"}),
    "anon audience": lambda g: g.token(claims={"aud": "anon"}),
    "wrong issuer": lambda g: g.token(claims={"iss": "https://evil.example/auth/v1"}),
    "wrong role": lambda g: g.token(claims={"role": "service_role"}),
    "anonymous session": lambda g: g.token(claims={"is_anonymous": True}),
    "subject not a uuid": lambda g: g.token(claims={"sub": "../../admin"}),
    "unknown key id": lambda g: g.token(kid="some-other-key"),
    "signed by a stranger": _stranger,
    "tampered payload": lambda g: (
        f"{g.header}.{_b64({**g.claims, 'sub': str(uuid.uuid4())})}.{g.signature}"
    ),
    "tampered signature": _flipped,
    "alg none": lambda g: f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{g.payload}.",
    "HS256 with a guessable secret": _guessable_hs256,
    "HS256 keyed with the public key": _hs256_with_public_key,
    **{f"no {claim}": (lambda g, c=claim: g.without(c)) for claim in REQUIRED},
    "garbage": lambda g: "not-a-token",
    "three empty parts": lambda g: "..",
    "huge": lambda g: "a" * 6000,
}


def forge(dev: DevServer, user: uuid.UUID, how: str) -> str:
    return FORGERIES[how](_Good.of(dev, user))


def forged_tokens(dev: DevServer, user: uuid.UUID) -> dict[str, str]:
    good = _Good.of(dev, user)
    return {how: make(good) for how, make in FORGERIES.items()}
