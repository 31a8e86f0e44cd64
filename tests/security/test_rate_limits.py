"""Rate limits and abuse: every limit (per user and per address) holds under concurrency,
answers 429 with Retry-After, is configurable, costs one SQL round trip (folded into the
call it guards) and a refused attempt changes nothing: no row, no charge, no count."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from izgens.db import Database, get_database
from izgens.logs import request_id_var
from tests.events import load
from tests.security.support import FUNCTIONS, RATE_LIMITS, Stack, operations
from tests.support.problems import assert_problem
from tests.support.tokens import forged_tokens
from tests.support.users import balance

LIMIT = 4
ATTEMPTS = 16
WINDOW = 86_400  # a window boundary inside a test would be a flake; a day makes it ~never


def _limits(monkeypatch: pytest.MonkeyPatch, **limits: int) -> None:
    """Every limit out of the way except those given; addresses from X-Forwarded-For (its
    last entry: the test plays the proxy that appended it)."""
    for name in RATE_LIMITS:
        monkeypatch.setenv(name, str(limits.get(name, 100_000)))
    monkeypatch.setenv("RATE_WINDOW_SECONDS", str(WINDOW))
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", "1")  # the test client plays the one proxy
    reset_settings()


def _together(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    """Run the calls at once: every thread waits at a barrier, then all fire."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], httpx.Response]) -> httpx.Response:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


@dataclass(frozen=True)
class Action:
    name: str  # the bucket prefix in SQL
    table: str  # where an admitted attempt writes its row
    method: str
    path: str
    body: dict[str, Any] | None
    idempotent: bool  # takes an Idempotency-Key


ACTIONS = {
    "generate": Action(
        "generate",
        "generations",
        "POST",
        "/generate/generations",
        {"prompt": "a paper boat on a river"},
        True,
    ),
    "upload": Action(
        "upload",
        "reference_uploads",
        "POST",
        "/generate/uploads",
        {"filename": "a.png", "content_type": "image/png", "bytes": 1000},
        False,
    ),
    "checkout": Action(
        "checkout", "purchases", "POST", "/account/checkout", {"pack_id": "starter"}, True
    ),
    "export": Action(
        "export", "data_exports", "POST", "/privacy_export/privacy/exports", None, False
    ),
}


def _call(stack: Stack, action: Action, token: str, ip: str) -> Callable[[], httpx.Response]:
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": ip}
    if action.idempotent:
        headers["Idempotency-Key"] = uuid.uuid4().hex

    def call() -> httpx.Response:
        with httpx.Client(base_url=stack.dev.base, timeout=60) as client:
            return client.request(action.method, action.path, json=action.body, headers=headers)

    return call


def _hits(db: Database, prefix: str) -> int:
    row = db.one(
        "select coalesce(sum(hits), 0) as n from public.rate_limits where bucket like %s",
        (prefix + "%",),
    )
    assert row is not None
    return int(row["n"])


def _assert_exactly_limit_admitted(responses: list[httpx.Response]) -> None:
    admitted = [r for r in responses if r.status_code < 300]
    refused = [r for r in responses if r.status_code == 429]
    assert len(admitted) == LIMIT, [(r.status_code, r.text[:200]) for r in responses]
    assert len(refused) == ATTEMPTS - LIMIT
    for response in refused:
        body = assert_problem(response, 429)
        assert body["code"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= WINDOW


@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_per_user_limit_holds_under_concurrency_and_refusals_write_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    spec = ACTIONS[action]
    _limits(monkeypatch, **{f"RATE_{action.upper()}_USER": LIMIT})
    before = stack.counts()
    funds = balance(stack.db, stack.user)
    # one user from many addresses: only the per-user limit can bind
    calls = [_call(stack, spec, stack.token, f"198.51.100.{i + 1}") for i in range(ATTEMPTS)]
    _assert_exactly_limit_admitted(_together(calls))
    after = stack.counts()
    assert after[spec.table] == before[spec.table] + LIMIT
    # the refused attempts counted nowhere: neither their user nor their address bucket
    assert _hits(stack.db, f"{spec.name}:user:") == LIMIT
    assert _hits(stack.db, f"{spec.name}:ip:") == LIMIT
    if action == "generate":
        cost = stack.db.one(
            "select coalesce(sum(cost), 0) as c from public.generations where user_id = %s",
            (stack.user,),
        )
        assert cost is not None
        assert balance(stack.db, stack.user) == funds - cost["c"]
        assert after["credit_ledger"] == before["credit_ledger"] + LIMIT


@pytest.mark.parametrize("action", list(ACTIONS))
def test_the_per_address_limit_holds_under_concurrency_and_refusals_write_nothing(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    spec = ACTIONS[action]
    _limits(monkeypatch, **{f"RATE_{action.upper()}_IP": LIMIT})
    users = [stack.new_user() for _ in range(ATTEMPTS)]
    before = stack.counts()
    # many users behind one address: only the per-address limit can bind
    calls = [_call(stack, spec, token, "203.0.113.9") for _, token in users]
    _assert_exactly_limit_admitted(_together(calls))
    after = stack.counts()
    assert after[spec.table] == before[spec.table] + LIMIT
    assert _hits(stack.db, f"{spec.name}:ip:203.0.113.9") == LIMIT
    # refused users' own buckets were rolled back with their attempt
    assert _hits(stack.db, f"{spec.name}:user:") == LIMIT
    # another address is not affected
    _, token = users[0]
    other = _call(stack, spec, token, "203.0.113.10")()
    assert other.status_code < 300, other.text


@pytest.mark.parametrize(
    "action",
    ["upload", "checkout", "export", "generate"],
)
def test_ipv6_addresses_of_one_subscriber_share_a_bucket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Every per-address limit: rotating through a /64 (one subscriber's allocation) does
    not reset it; an IPv4-mapped address counts as its IPv4 address."""
    _limits(monkeypatch, **{f"RATE_{action.upper()}_IP": 2})
    spec = ACTIONS[action]

    def ok(address: str) -> None:
        response = _call(stack, spec, stack.token, address)()
        assert response.status_code < 300, (address, response.text)

    ok("2001:db8:1:2::1")
    ok("2001:db8:1:2:ffff::9")
    assert_problem(_call(stack, spec, stack.token, "2001:db8:1:2::abcd")(), 429)
    ok("2001:db8:1:3::1")  # the next /64
    ok("::ffff:192.0.2.1")
    ok("192.0.2.1")
    assert_problem(_call(stack, spec, stack.token, "192.0.2.1")(), 429)


def test_failed_tokens_of_one_ipv6_subscriber_share_a_bucket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, RATE_AUTH_FAILURES_IP=2)
    forged = {"Authorization": f"Bearer {forged_tokens(stack.dev, stack.user)['expired']}"}
    statuses = [
        stack.api.get("/account/me", headers={**forged, "X-Forwarded-For": address}).status_code
        for address in ("2001:db8:9::1", "2001:db8:9:0:1::1", "2001:db8:9::ffff", "2001:db8:a::1")
    ]
    assert statuses == [401, 401, 429, 401]


# ---------------------------------------------------------------------------------------------
# Failed sign-ins


def test_failed_tokens_per_address_turn_into_429_under_concurrency(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    _limits(monkeypatch, RATE_AUTH_FAILURES_IP=LIMIT)
    forged = list(forged_tokens(stack.dev, stack.user).values())
    before = stack.counts()

    def call(token: str) -> Callable[[], httpx.Response]:
        def run() -> httpx.Response:
            with httpx.Client(base_url=stack.dev.base, timeout=60) as client:
                return client.get(
                    "/account/me",
                    headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": "192.0.2.77"},
                )

        return run

    responses = _together([call(forged[i % len(forged)]) for i in range(ATTEMPTS)])
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [401] * LIMIT + [429] * (ATTEMPTS - LIMIT), statuses
    for response in responses:
        body = assert_problem(response, response.status_code)
        if response.status_code == 429:
            assert body["code"] == "rate_limited"
            assert 1 <= int(response.headers["retry-after"]) <= WINDOW
    assert _hits(stack.db, "auth:ip:192.0.2.77") == LIMIT
    # nothing else was written; the failures did not lock out a valid token from there
    assert {k: v for k, v in stack.counts().items() if k != "rate_limits"} == {
        k: v for k, v in before.items() if k != "rate_limits"
    }
    valid = stack.api.get("/account/me", headers={**stack.auth, "X-Forwarded-For": "192.0.2.77"})
    assert valid.status_code == 200, valid.text
    # another address still gets a plain 401
    other = stack.api.get(
        "/account/me",
        headers={"Authorization": f"Bearer {forged[0]}", "X-Forwarded-For": "192.0.2.78"},
    )
    assert_problem(other, 401)


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": ""}, {"Authorization": "Bearer"}, {"Authorization": "Basic dTpw"}],
    ids=["none", "empty", "bearer without token", "basic"],
)
def test_a_missing_token_is_401_never_counted_and_never_429(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, headers: dict[str, str]
) -> None:
    _limits(monkeypatch, RATE_AUTH_FAILURES_IP=0)  # any counted failure would be a 429
    before = stack.counts()
    for _ in range(3):
        response = stack.api.get("/account/me", headers={**headers, "X-Forwarded-For": "192.0.2.5"})
        assert_problem(response, 401)
    assert stack.counts() == before


# ---------------------------------------------------------------------------------------------
# Round trips


@contextmanager
def _sql_by_request() -> Iterator[dict[str, int]]:
    """SQL round trips on the process-wide database, by the request id that ran them."""
    database = get_database()
    original = database._run
    counts: dict[str, int] = {}
    lock = threading.Lock()

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            rid = request_id_var.get() or "-"
            counts[rid] = counts.get(rid, 0) + 1
        return original(*args, **kwargs)

    database._run = counted  # type: ignore[method-assign]
    try:
        yield counts
    finally:
        del database._run


def test_each_limit_is_folded_into_the_call_it_guards(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A limit costs no round trip of its own: an upload is one SQL call, a checkout two
    (admit, attach the invoice), a failed token one, a missing token none."""
    _limits(monkeypatch, RATE_UPLOAD_IP=10, RATE_CHECKOUT_IP=10, RATE_AUTH_FAILURES_IP=10)
    forged = forged_tokens(stack.dev, stack.user)["expired"]
    cases = {
        "upload-req-0001": (ACTIONS["upload"], stack.auth, 201, 1),
        "checkout-req-0001": (ACTIONS["checkout"], stack.auth, 201, 2),
        "badtoken-req-0001": (None, {"Authorization": f"Bearer {forged}"}, 401, 1),
        "notoken-req-00001": (None, {}, 401, 0),
    }
    with _sql_by_request() as counts:
        for rid, (action, auth, status, _) in cases.items():
            headers = {**auth, "X-Request-Id": rid, "X-Forwarded-For": "192.0.2.33"}
            if action is None:
                response = stack.api.get("/account/me", headers=headers)
            else:
                if action.idempotent:
                    headers["Idempotency-Key"] = uuid.uuid4().hex
                response = stack.api.request(
                    action.method, action.path, json=action.body, headers=headers
                )
            assert response.status_code == status, response.text
    assert {rid: counts.get(rid, 0) for rid in cases} == {
        rid: expected for rid, (*_, expected) in cases.items()
    }


# ---------------------------------------------------------------------------------------------
# The SQL itself


def test_the_sql_limit_never_over_admits_under_contention(db: Database) -> None:
    """64 connections race for one bucket of 10: exactly 10 are admitted, the rest get the
    seconds to wait, and refused hits are not counted."""
    with ThreadPoolExecutor(64) as pool:
        barrier = threading.Barrier(64)

        def hit(_: int) -> int:
            barrier.wait()
            row = db.one("select izgens.rate_limit('race:user:x', 10, 3600) as retry")
            assert row is not None
            return int(row["retry"])

        results = list(pool.map(hit, range(64)))
    assert results.count(0) == 10
    assert all(1 <= r <= 3600 for r in results if r)
    assert _hits(db, "race:user:x") == 10


def test_windows_are_counted_on_the_pinned_clock_so_no_boundary_falls_in_a_test(
    db_url: str, db: Database
) -> None:
    """Tests pin `izgens.clock()` (tests/conftest.py): a window never ends mid-test, and
    moving the clock is how a test sees the next one. Unpinned, it is now()."""
    from datetime import timedelta

    import psycopg

    from tests.conftest import pin_rate_clock

    def hit(url: str) -> int:
        with psycopg.connect(url, autocommit=True) as conn:
            row = conn.execute("select izgens.rate_limit('clock:user:x', 2, 60)").fetchone()
        assert row is not None
        return int(row[0])

    pinned = db.one("select izgens.clock() as at, now() as now")
    assert pinned is not None and pinned["at"] != pinned["now"]
    first = [hit(db_url) for _ in range(3)]
    assert first[:2] == [0, 0] and 1 <= first[2] <= 60
    pin_rate_clock(db_url, pinned["at"] + timedelta(seconds=60))
    assert [hit(db_url) for _ in range(3)][:2] == [0, 0]  # the next window
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("set izgens.clock = ''")
        row = conn.execute("select izgens.clock() = now()").fetchone()
    assert row == (True,)


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:aa:bb:cc:dd:ee:ff", "2001:db8:aa:bb::/64"),
        (None, "unknown"),
    ],
)
def test_address_buckets(db: Database, address: str | None, bucket: str) -> None:
    row = db.one("select izgens.ip_bucket(%s::inet) as b", (address,))
    assert row is not None and row["b"] == bucket


def test_the_signed_out_path_imports_no_database_driver_or_jwt(tmp_path: Path) -> None:
    """Counting failed tokens must not cost the unauthenticated cold start: a request
    without a token is answered 401 by every function with psycopg and jwt never imported."""
    # per function its first secured route without path parameters, as a Function URL
    # request without a token
    routes: dict[str, tuple[str, str]] = {}
    for op in operations():
        if op.secured and "{" not in op.path:
            routes.setdefault(op.function, (op.method, op.path))
    requests = {}
    for name in FUNCTIONS:
        method, path = routes.get(name, ("GET", "/nothing"))
        requests[name] = load("function_url", method=method, path=path)
    script = r"""
import json, sys
from izgens_local.devserver import load_function
from mangum import Mangum
results = {}
for name, event in json.loads(sys.argv[1]).items():
    answer = Mangum(load_function(name).app, lifespan="off")(event, None)
    results[name] = answer["statusCode"]
loaded = [m for m in ("psycopg", "jwt") if m in sys.modules]
print(json.dumps({"status": results, "loaded": loaded}))
"""
    env = {"IZGENS_ENV": "test", "PATH": "/usr/bin:/bin", "LOG_LEVEL": "WARNING"}
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(requests)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["loaded"] == []
    assert all(status in (401, 404) for status in result["status"].values()), result
