"""Warm latency of every HTTP function against a bare FastAPI+Mangum route running the
same SQL through the same connection, interleaved call by call in one process.

For each function one representative route, answered through its Lambda handler from a
Function URL (payload v2) event, token verified as in production (ES256 from a JWKS,
cached). Its SQL is recorded on a warm-up call and replayed verbatim by the bare route,
so the two differ only by what our code adds: the edge, authentication, the library, the
response. The bare route is FastAPI's plain style (a `def` endpoint, which Mangum runs on
a worker thread); its `async def` twin is shown too.

    python benchmarks/warm.py

Target (issue 15): every function's p50 and p99 <= 1.3x the bare route.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import (  # noqa: E402
    PLISIO_SECRET,
    LambdaContext,
    median,
    migrated_database,
    percentile,
    table,
    write_result,
)
from cold_start import event, json_server  # noqa: E402

from tests.payments.support import callback_body  # noqa: E402

CALLS = int(os.environ.get("BENCH_WARM_CALLS", "3000"))
TARGET = 1.3
BARE_EVENT = event("GET", "/replay", None)


def seed(url: str) -> dict[str, Any]:
    user = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'warm@example.com')", (user,))
        conn.execute("select izgens.ensure_profile(%s)", (user,))
        conn.execute("select izgens.confirm_age(%s)", (user,))
        generation = conn.execute(
            """
            insert into public.generations (user_id, status, prompt, model, resolution, ratio,
                duration, cost, idempotency_key, request_hash, provider_task_id, submitted_at,
                checked_at)
            values (%s, 'running', 'a paper boat on a river', 'seedance-1-0-pro-fast-251015',
                    '720p', '16:9', 5, 16, 'bench', 'h', 'cgt-bench', now(),
                    now() + interval '1 day')
            returning id
            """,
            (user,),
        ).fetchone()[0]  # type: ignore[index]
        export = conn.execute(
            "insert into public.data_exports (user_id) values (%s) returning id", (user,)
        ).fetchone()[0]  # type: ignore[index]
    return {"user": user, "generation": generation, "export": export}


def plisio_body() -> bytes:
    """A verified callback for an order we do not know: stored once, then a duplicate."""
    return callback_body(str(uuid.uuid4()), "pending", txn_id="bench-txn", secret=PLISIO_SECRET)


def recorded_sql(db: Any, call: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements (with parameters) one call runs on `db`."""
    seen: list[tuple[str, Any]] = []
    run = db._run

    def record(sql: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((sql, params))
        return run(sql, params, *args, **kwargs)

    db._run = record
    try:
        call()
    finally:
        del db._run
    return seen


def bare_apps(db: Any, statements: list[tuple[str, Any]]) -> tuple[Any, Any]:
    """FastAPI+Mangum handlers (sync and async endpoint) running exactly `statements`."""
    from fastapi import FastAPI
    from mangum import Mangum

    sync_app, async_app = FastAPI(), FastAPI()

    @sync_app.api_route("/{path:path}", methods=["GET", "POST"])
    def replay(path: str) -> dict[str, int]:
        rows = [db.one(sql, params) for sql, params in statements]
        return {"rows": len(rows)}

    @async_app.api_route("/{path:path}", methods=["GET", "POST"])
    async def replay_async(path: str) -> dict[str, int]:
        rows = [db.one(sql, params) for sql, params in statements]
        return {"rows": len(rows)}

    return Mangum(sync_app, lifespan="off"), Mangum(async_app, lifespan="off")


def main() -> None:
    from izgens_local.devauth import DevSigner

    with migrated_database() as url:
        ids = seed(url)
        signer = DevSigner("pending")
        jwks = json_server(signer.jwks())
        signer.issuer = f"{jwks.base}/auth/v1"
        os.environ.update(
            {
                "IZGENS_ENV": "test",
                "DATABASE_URL": url,
                "DB_POOL_SIZE": "1",
                "SUPABASE_URL": jwks.base,
                "LOG_LEVEL": "WARNING",
                "S3_BUCKET": "izgens-bench",
                "AWS_REGION": "us-east-1",
                "PLISIO_SECRET_KEY": PLISIO_SECRET,
                "RATE_WINDOW_SECONDS": "60",
            }
        )
        try:
            report = measure(ids, signer.token(ids["user"], "warm@example.com"))
        finally:
            jwks.stop()
    sys.stdout.write(report)


def measure(ids: dict[str, Any], token: str) -> str:
    import importlib

    from izgens.db import get_database

    db = get_database()
    context = LambdaContext("bench-warm")
    routes = {
        "account GET /me": ("account", event("GET", "/me", token)),
        "generate GET /quote": ("generate", event("GET", "/quote", token)),
        "status GET /generations/{id}": (
            "status",
            event("GET", f"/generations/{ids['generation']}", token),
        ),
        "privacy_export GET /privacy/exports/{id}": (
            "privacy_export",
            event("GET", f"/privacy/exports/{ids['export']}", token),
        ),
        "plisio_webhook POST /plisio/callback": (
            "plisio_webhook",
            event("POST", "/plisio/callback", None, plisio_body().decode(), query="json=true"),
        ),
    }
    cases: dict[str, Callable[[], object]] = {}
    pairs: dict[str, tuple[str, str, str]] = {}
    for label, (function, ev) in routes.items():
        handler = importlib.import_module(f"izgens_functions.{function}.handler").handler

        def call(handler: Any = handler, ev: dict = ev) -> None:
            answer = handler(ev, context)
            assert answer["statusCode"] == 200, answer

        for _ in range(20):
            call()
        statements = recorded_sql(db, call)
        sync_bare, async_bare = bare_apps(db, statements)

        def bare(handler: Any = sync_bare) -> None:
            assert handler(BARE_EVENT, context)["statusCode"] == 200

        def bare_async(handler: Any = async_bare) -> None:
            assert handler(BARE_EVENT, context)["statusCode"] == 200

        names = (
            label,
            f"  {function}: bare def route, same {len(statements)} SQL",
            f"  {function}: bare async def route",
        )
        cases[names[0]], cases[names[1]], cases[names[2]] = call, bare, bare_async
        pairs[label] = names
    for fn in cases.values():
        for _ in range(50):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases.items())
    for _ in range(CALLS):
        for name, fn in order:
            started = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - started) * 1e6)
        order = order[1:] + order[:1]
    stats = {n: {"p50_us": median(xs), "p99_us": percentile(xs, 99)} for n, xs in samples.items()}
    rows, results = [], {}
    for label, (ours, bare, bare_async) in pairs.items():
        p50 = stats[ours]["p50_us"] / stats[bare]["p50_us"]
        p99 = stats[ours]["p99_us"] / stats[bare]["p99_us"]
        ok = p50 <= TARGET and p99 <= TARGET
        results[label] = {"p50_ratio": p50, "p99_ratio": p99, **stats[ours], "ok": ok}
        for name in (ours, bare, bare_async):
            line = [name, f"{stats[name]['p50_us']:.0f}", f"{stats[name]['p99_us']:.0f}"]
            line += (
                [f"{p50:.2f}", f"{p99:.2f}", "ok" if ok else "MISSED"] if name == ours else [""] * 3
            )
            rows.append(line)
    write_result("warm", {"calls": CALLS, "target": TARGET, "routes": results, "stats": stats})
    title = (
        f"\nWarm requests through each function's handler vs a bare FastAPI+Mangum route "
        f"running the same SQL, {CALLS} calls each, interleaved, microseconds\n"
    )
    headers = ["case", "p50 us", "p99 us", "p50 ratio", "p99 ratio", f"<= {TARGET}x"]
    return title + table(headers, rows) + "\n"


if __name__ == "__main__":
    main()
