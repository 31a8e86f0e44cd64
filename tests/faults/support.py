"""What every fault test ends with, and the injectors that are not the proxy.

`settle` is the operator's `izgens cleanup --now` after the fault is gone: time is moved
past every lease and window by shifting timestamps in the database (never by sleeping),
then the jobs run, until nothing is in flight. `assert_books` then checks the promises:
every generation final, charged once, refunded exactly when the user got no video, at
most one provider task per generation, and every balance what the grants minus the
delivered videos say.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from izgens import errors
from izgens.cleanup import run_jobs
from izgens.db import Database
from tests.generation.conftest import GenEnv
from tests.support.users import assert_books_balance
from tests.support.waiting import wait_for

__all__ = [
    "FlakyDatabase",
    "ProcessDied",
    "ProcessDyingTransport",
    "assert_books",
    "in_flight",
    "settle",
    "wait_provider_idle",
]

IN_FLIGHT = ("queued", "submitted", "running", "storing")
TERMINAL_TASK = ("succeeded", "failed", "expired", "cancelled")


def in_flight(env: GenEnv) -> list[str]:
    rows = env.db.all(
        "select id from public.generations where status = any(%s) order by created_at",
        (list(IN_FLIGHT),),
    )
    return [str(r["id"]) for r in rows]


def wait_provider_idle(env: GenEnv, timeout: float = 10.0) -> None:
    """Every task the provider holds has finished (its callbacks may still be on the way)."""
    wait_for(
        lambda: all(t["status"] in TERMINAL_TASK for t in env.sim_tasks()),
        timeout,
        "the provider finishing its tasks",
    )


def settle(env: GenEnv, *, rounds: int = 6) -> list[dict[str, Any]]:
    """`run_jobs(now=True)` with time moved on, until nothing is in flight (bounded)."""
    runs = []
    for _ in range(rounds):
        wait_provider_idle(env)
        pending = in_flight(env)
        if not pending:
            break
        for generation_id in pending:
            env.age(generation_id, 900)  # past the submit and storing leases and the window
        result = run_jobs(["generations", "ledger_check"], now=True)
        assert all("error" not in counts for counts in result.values()), result
        runs.append(result)
    env.settle()
    assert in_flight(env) == [], f"stuck after {rounds} cleanup runs: {runs}"
    return runs


def assert_books(env: GenEnv) -> dict[str, str]:
    """Nothing stuck, no credit lost, nothing charged twice, at most one task each.

    Returns each generation's final status, by id."""
    rows = env.db.all("select * from public.generations order by created_at")
    finals: dict[str, str] = {}
    delivered: dict[uuid.UUID, int] = {}
    for row in rows:
        gid, cost, status = str(row["id"]), int(row["cost"]), row["status"]
        finals[gid] = status
        assert status in ("completed", "failed", "canceled"), row
        expected = [("generation", -cost)]
        if status != "completed":
            expected.append(("generation_refund", cost))
        assert env.ledger(gid) == expected, (gid, status, env.ledger(gid))
        tasks = env.sim_tasks(gid)
        assert len(tasks) <= 1, f"generation {gid} was submitted {len(tasks)} times"
        if status == "completed":
            assert len(tasks) == 1 and row["provider_task_id"] == tasks[0]["id"]
            assert env.object_exists(row["video_key"]), row["video_key"]
            delivered[row["user_id"]] = delivered.get(row["user_id"], 0) + cost
    users = env.db.all(
        "select p.user_id, p.balance,"
        " (select coalesce(sum(delta), 0) from public.credit_ledger l"
        "   where l.user_id = p.user_id"
        "     and l.reason not in ('generation', 'generation_refund')) as granted"
        " from public.profiles p"
    )
    for user in users:
        spent = delivered.get(user["user_id"], 0)
        assert int(user["balance"]) == int(user["granted"]) - spent, user
    assert_books_balance(env.db)
    return finals


# --- the process dying ---------------------------------------------------------------------


class ProcessDied(BaseException):  # noqa: N818 - it stands for SIGKILL, not an error
    """Raised where the process would have died: nothing in izgens may catch it."""


class ProcessDyingTransport(httpx.BaseTransport):
    """The provider client's transport; the process dies just `before` or just `after` the
    create request reaches the provider (after: the task exists, the answer is lost)."""

    def __init__(self, when: str) -> None:
        assert when in ("before", "after")
        self.when = when
        self.inner = httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        create = request.method == "POST" and request.url.path.endswith("/tasks")
        if create and self.when == "before":
            raise ProcessDied("killed before the create was sent")
        response = self.inner.handle_request(request)
        if create:
            response.read()
            response.close()
            raise ProcessDied("killed after the create was sent")
        return response

    def close(self) -> None:
        self.inner.close()


# --- the database failing one call -------------------------------------------------------


class FlakyDatabase(Database):
    """A Database whose calls matching `pattern` fail as a lost connection would, `times`
    times (a stand-in for the database going away at one precise step)."""

    def __init__(self, url: str, pattern: str, times: int = 1) -> None:
        super().__init__(url, size=4, name="izgens-flaky")
        self.pattern = re.compile(pattern)
        self.times = times
        self.failed: list[str] = []

    def _run(self, sql: str, params: Any, fetch: str, idempotent: bool) -> Any:
        if self.pattern.search(sql) and len(self.failed) < self.times:
            self.failed.append(sql)
            raise errors.DatabaseUnavailable("the database connection failed (injected)")
        return super()._run(sql, params, fetch, idempotent)
