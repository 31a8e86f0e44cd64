"""The one way a process keeps a client for all its requests (the database pool, the token
verifier, the bucket, the provider and payment clients, the settings they are built from).

Each is a `Shared`: built on first use (never at import: cold start), once, under a lock
(concurrent first requests in the container would each build one and leak all but the
last), replaceable by a test, and reset by `reset_all()`. After a SnapStart restore one
memory snapshot serves many containers, so `izgens.http.after_restore` resets every one of
them: connections and credentials from before the snapshot are not reused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["Shared", "reset_all"]

T = TypeVar("T")

_registry: list[Shared[object]] = []


class Shared(Generic[T]):
    def __init__(self, name: str, build: Callable[[], T], close: Callable[[T], None] | None = None):
        self.name = name
        self._build = build
        self._close = close
        self._value: T | None = None
        self._lock = threading.Lock()
        _registry.append(self)  # type: ignore[arg-type]

    def get(self) -> T:
        value = self._value
        if value is None:
            with self._lock:
                if self._value is None:
                    self._value = self._build()
                value = self._value
        return value

    def set(self, value: T) -> None:
        """Use `value` from now on (tests inject a client pointed at their own server)."""
        self.reset()
        with self._lock:
            self._value = value

    def reset(self) -> None:
        """Forget (and close) the client; the next `get` builds a new one."""
        with self._lock:
            old, self._value = self._value, None
        if old is not None and self._close is not None:
            self._close(old)


def reset_all() -> None:
    """Every process-wide client, newest first (a client may depend on the settings)."""
    for shared in reversed(_registry):
        shared.reset()
