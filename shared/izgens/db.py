"""Postgres access: a tiny connection pool and the one place SQL errors become IzgensErrors.

One connection per warm Lambda container (pool size 1); the dev server and jobs use a few.
Connections are autocommit with `prepare_threshold=None`, safe behind Supavisor's
transaction mode. Every money or state change is a SQL function, so each call here is one
round trip; `round_trips` counts them for the tests that hold us to the budget.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from izgens import errors
from izgens.clients import Shared
from izgens.errors import DatabaseUnavailable

if TYPE_CHECKING:
    import psycopg

__all__ = ["Database", "get_database", "reset_database", "translate_error"]

Params = Sequence[Any] | dict[str, Any] | None


def _detail_json(detail: str | None) -> dict[str, Any]:
    try:
        value = json.loads(detail or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def translate_error(exc: psycopg.Error) -> errors.IzgensError | None:
    """Map the SQLSTATEs our SQL functions raise (see the migrations) to exceptions."""
    diag = exc.diag
    state, detail = exc.sqlstate or "", diag.message_detail
    info = _detail_json(detail)
    if state == "IZ001":
        return errors.InsufficientCredits(int(info.get("balance", 0)), int(info.get("required", 0)))
    if state == "IZ002":
        return errors.IdempotencyConflict(detail)
    if state == "IZ003":
        return errors.AgeNotConfirmed()
    if state == "IZ004":
        return errors.AccountBlocked()
    if state == "IZ005":
        return errors.DeletionPending()
    if state == "IZ006":
        return errors.RateLimited(int(info.get("retry_after", 1)), str(info.get("bucket", "")))
    if state == "IZ007":
        return errors.InvalidTransition(str(info.get("from")), str(info.get("to")))
    if state == "IZ008":
        if detail == "profile":
            # a valid token whose account no longer exists (purged): treat as signed out
            return errors.Unauthenticated("this account no longer exists")
        return errors.NotFound(detail)
    if state == "IZ009":
        return errors.InvalidRequest(detail)
    return None


def _went_away(conn: psycopg.Connection[Any]) -> bool:
    """True when an idle connection has something to read: a server only writes to an idle
    session to end it (a restart, an idle timeout, `pg_terminate_backend`). One poll, no
    round trip; a call sent on such a connection would fail, and could not be retried
    unless idempotent."""
    import select

    try:
        poller = select.poll()
        poller.register(conn.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class Database:
    """A bounded set of autocommit connections, opened on first use."""

    def __init__(self, url: str, *, size: int = 1, timeout: float = 10.0, name: str = "izgens"):
        self.url = url
        self.size = size
        self.timeout = timeout
        self.name = name
        self.round_trips = 0
        self.in_use = 0  # connections lent out now
        self.peak_in_use = 0  # the most lent out at once (the burst benchmark reports it)
        self.waited = 0  # callers that found every connection lent out and waited
        self.exhausted = 0  # callers that gave up waiting for a connection
        self._idle: list[psycopg.Connection[Any]] = []
        self._closed = False  # close() was called: connections lent out then are closed on return
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)

    def _connect(self) -> psycopg.Connection[Any]:
        import psycopg
        from psycopg.rows import dict_row

        return psycopg.connect(
            self.url,
            autocommit=True,
            prepare_threshold=None,
            row_factory=dict_row,
            connect_timeout=5,
            application_name=self.name,
        )

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        import psycopg

        if not self._slots.acquire(blocking=False):
            with self._lock:
                self.waited += 1
            if not self._slots.acquire(timeout=self.timeout):
                with self._lock:
                    self.exhausted += 1
                raise DatabaseUnavailable("all database connections are busy")
        conn = None
        try:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
                self.in_use += 1
                self.peak_in_use = max(self.peak_in_use, self.in_use)
            if conn is not None and not conn.closed and _went_away(conn):
                conn.close()  # closed by the server while idle: never send anything on it
            if conn is None or conn.closed or conn.broken:
                try:
                    conn = self._connect()
                except psycopg.OperationalError as exc:
                    conn = None
                    raise DatabaseUnavailable("cannot connect to the database") from exc
            yield conn
        finally:
            if conn is not None:
                healthy = not conn.closed and not conn.broken
                idle = healthy and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
                with self._lock:
                    keep = idle and not self._closed
                    if keep:
                        self._idle.append(conn)
                if not keep and not conn.closed:
                    conn.close()
            with self._lock:
                self.in_use -= 1
            self._slots.release()

    @contextmanager
    def dedicated(self) -> Iterator[psycopg.Connection[Any]]:
        """A connection of its own, outside the pool, closed afterwards: for one long
        statement (an export's COPY) while the pool keeps serving short ones."""
        import psycopg

        try:
            conn = self._connect()
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable("cannot connect to the database") from exc
        try:
            yield conn
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable("the database connection failed") from exc
        finally:
            conn.close()

    def _run(self, sql: str, params: Params, fetch: str, idempotent: bool) -> Any:
        import psycopg

        for attempt in (1, 2):
            try:
                with self.connection() as conn:
                    self.round_trips += 1
                    cur = conn.execute(sql, params)
                    if fetch == "one":
                        return cur.fetchone()
                    if fetch == "all":
                        return cur.fetchall()
                    return None
            except psycopg.Error as exc:
                mapped = translate_error(exc)
                if mapped is not None:
                    raise mapped from exc
                dropped = isinstance(exc, psycopg.OperationalError)
                if dropped and idempotent and attempt == 1:
                    continue  # the connection died under us: one fresh try
                if dropped:
                    raise DatabaseUnavailable("the database connection failed") from exc
                raise
        raise AssertionError("unreachable")

    def one(
        self, sql: str, params: Params = None, *, idempotent: bool = True
    ) -> dict[str, Any] | None:
        return self._run(sql, params, "one", idempotent)

    def all(
        self, sql: str, params: Params = None, *, idempotent: bool = True
    ) -> list[dict[str, Any]]:
        return self._run(sql, params, "all", idempotent)

    def execute(self, sql: str, params: Params = None, *, idempotent: bool = True) -> None:
        self._run(sql, params, "none", idempotent)

    def close(self) -> None:
        """Close the idle connections; one still lent out is closed when it comes back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


def _build_database() -> Database:
    from izgens.config import get_settings

    settings = get_settings()
    return Database(
        settings.database_url, size=settings.db_pool_size, timeout=settings.db_pool_timeout
    )


# the process-wide pool (one connection per warm Lambda by default)
_database = Shared("database", _build_database, close=Database.close)
get_database = _database.get
reset_database = _database.reset
