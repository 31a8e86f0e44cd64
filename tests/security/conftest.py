"""The hardening fixtures: the whole system wired up, a real adult user with credits."""

from __future__ import annotations

from tests.security.support import plisio_sim, security_sim, stack

__all__ = ["plisio_sim", "security_sim", "stack"]
