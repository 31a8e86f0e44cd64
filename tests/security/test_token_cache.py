"""A verified token is remembered, by its exact string, for at most five minutes and never
past its expiry; nothing that failed is remembered. The clock is injected."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest

from izgens.auth import VERIFIED_CACHE_SECONDS, VERIFIED_CACHE_SIZE, TokenVerifier
from izgens.errors import Unauthenticated

SECRET = "legacy-hs256-secret-for-the-token-cache-test"
ISSUER = "https://example.supabase.co/auth/v1"


def now() -> float:
    """The real time: PyJWT checks exp and iat on it; the cache gets its own clock."""
    return float(int(time.time()))


def token(exp: float, **claims: object) -> str:
    payload = {
        "iss": ISSUER,
        "aud": "authenticated",
        "sub": str(uuid.uuid4()),
        "role": "authenticated",
        "iat": int(now()) - 10,
        "exp": int(exp),
        **claims,
    }
    return jwt.encode(payload, SECRET, algorithm="HS256")


class Counting(TokenVerifier):
    def __init__(self, clock: list[float]) -> None:
        super().__init__(
            issuer=ISSUER, jwks_url=None, hs256_secret=SECRET, leeway=0, clock=lambda: clock[0]
        )
        self.checks = 0

    def _verify(self, token: str):  # type: ignore[no-untyped-def]
        self.checks += 1
        return super()._verify(token)


def test_a_token_is_checked_once_then_remembered_until_the_cache_time() -> None:
    t0 = now()
    clock = [t0]
    verifier = Counting(clock)
    good = token(t0 + 3600)
    first = verifier.verify(good)
    assert all(verifier.verify(good) == first for _ in range(5)) and verifier.checks == 1
    clock[0] += VERIFIED_CACHE_SECONDS - 1
    verifier.verify(good)
    assert verifier.checks == 1
    clock[0] += 1  # five minutes on: checked again
    assert verifier.verify(good).id == first.id and verifier.checks == 2


def test_a_remembered_token_is_never_remembered_past_its_expiry() -> None:
    t0 = now()
    clock = [t0]
    verifier = Counting(clock)
    short = token(t0 + 60)
    verifier.verify(short)
    clock[0] = t0 + 59
    verifier.verify(short)
    assert verifier.checks == 1
    clock[0] = t0 + 60  # within the cache time, at the token's exp: checked again
    verifier.verify(short)
    assert verifier.checks == 2


def test_failures_are_never_remembered() -> None:
    t0 = now()
    clock = [t0]
    verifier = Counting(clock)
    forged = token(t0 + 3600)[:-4] + "AAAA"
    for _ in range(3):
        with pytest.raises(Unauthenticated):
            verifier.verify(forged)
    assert verifier.checks == 3
    anonymous = token(t0 + 3600, is_anonymous=True)
    for _ in range(2):
        with pytest.raises(Unauthenticated, match="anonymous"):
            verifier.verify(anonymous)
    assert verifier.checks == 5


def test_the_cache_is_bounded() -> None:
    t0 = now()
    clock = [t0]
    verifier = Counting(clock)
    first = token(t0 + 3600)
    verifier.verify(first)
    for _ in range(VERIFIED_CACHE_SIZE):
        verifier.verify(token(t0 + 3600))
    assert len(verifier._verified) == VERIFIED_CACHE_SIZE
    checks = verifier.checks
    verifier.verify(first)  # the oldest was dropped: checked again
    assert verifier.checks == checks + 1
