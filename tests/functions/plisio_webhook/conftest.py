"""The payment fixtures (a Plisio simulator per session, settings pointed at it)."""

from __future__ import annotations

from tests.payments.support import plisio_env, plisio_sim

__all__ = ["plisio_env", "plisio_sim"]
