"""Status read latency: `GET /status/generations/{id}` of an in-flight generation checked
moments ago (one SQL round trip, no provider call), against a bare SELECT of the same row
through the same pooled connection.

Four cases, in this process, interleaved call by call, on one Database (pool size 1, as in
a Lambda container, so every case uses the same connection):

  bare SELECT                  `db.one(select * from generations where id and user_id)`
  status read (library)        what the function runs: `Lifecycle.get` + `view`
  bare FastAPI+Mangum SELECT   a Function URL event into a bare app whose sync endpoint runs
                               the same SELECT: the framework's floor for a 1-SQL route
  status function              a Function URL event into the `status` handler: token
                               verified (ES256, JWKS cached), the library read, the view

Targets: the library's status read p99 <= 2x the bare SELECT; the whole function p99 <= 2x
the bare FastAPI+Mangum route doing the same SELECT. The function against the bare SELECT
is reported too: on loopback Postgres (~0.2 ms a query) the web framework dominates it.
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
from _common import (  # noqa: E402
    LambdaContext,
    median,
    migrated_database,
    percentile,
    table,
    write_result,
)
from cold_start import event, json_server  # noqa: E402

CALLS = int(os.environ.get("BENCH_STATUS_CALLS", "6000"))
SELECT = "select * from public.generations where id = %s and user_id = %s"


def seed(url: str) -> tuple[uuid.UUID, uuid.UUID]:
    user = uuid.uuid4()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into auth.users (id, email) values (%s, 'bench@example.com')", (user,))
        conn.execute("select izgens.ensure_profile(%s)", (user,))
        row = conn.execute(
            """
            insert into public.generations (user_id, status, prompt, model, resolution, ratio,
                duration, cost, idempotency_key, request_hash, provider_task_id, submitted_at,
                checked_at)
            values (%s, 'running', 'a paper boat on a river', 'seedance-1-0-pro-fast-251015',
                    '720p', '16:9', 5, 16, 'bench', 'h', 'cgt-bench', now(),
                    now() + interval '1 day')  -- checked "moments ago" for the whole run
            returning id
            """,
            (user,),
        ).fetchone()
    assert row is not None
    return user, row[0]


def bare_app(db: Any, user: uuid.UUID) -> Callable[[dict, Any], dict]:
    from fastapi import FastAPI
    from mangum import Mangum

    app = FastAPI()

    @app.get("/generations/{generation_id}")
    def read(generation_id: uuid.UUID) -> dict[str, str]:
        row = db.one(SELECT, (generation_id, user))
        return {"id": str(row["id"]), "status": row["status"]}

    return Mangum(app, lifespan="off")


def main() -> None:
    from izgens_local.devauth import DevSigner

    with migrated_database() as url:
        user, generation = seed(url)
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
            }
        )
        try:
            report = measure(user, generation, signer.token(user, "bench@example.com"))
        finally:
            jwks.stop()
    sys.stdout.write(report)


def measure(user: uuid.UUID, generation: uuid.UUID, token: str) -> str:
    from izgens.db import get_database
    from izgens.generations import Lifecycle
    from izgens_functions.status.handler import handler

    db = get_database()
    life = Lifecycle.from_settings()
    path = f"/generations/{generation}"
    status_event = event("GET", path, token)
    bare = bare_app(db, user)
    bare_event = event("GET", path, None)
    context = LambdaContext("bench-status-read")

    def function() -> None:
        response = handler(status_event, context)
        assert response["statusCode"] == 200, response

    def bare_route() -> None:
        assert bare(bare_event, context)["statusCode"] == 200

    cases: dict[str, Callable[[], object]] = {
        "bare SELECT (same pooled connection)": lambda: db.one(SELECT, (generation, user)),
        "status read, library (Lifecycle.get + view)": lambda: life.view(
            life.get(user, generation)
        ),
        "bare FastAPI+Mangum route, same SELECT": bare_route,
        "status function (Function URL event)": function,
    }
    for fn in cases.values():  # warm: connection, JWKS, imports
        for _ in range(50):
            fn()
    trips = db.round_trips
    function()
    assert db.round_trips - trips == 1, "a status read of a fresh generation is one SQL"
    samples: dict[str, list[float]] = {name: [] for name in cases}
    # one call of each case in turn (the order rotating), so a burst of load from elsewhere
    # on the machine hits every case alike instead of whichever case was running
    order = list(cases.items())
    for _ in range(CALLS):
        for name, fn in order:
            started = time.perf_counter()
            fn()
            samples[name].append((time.perf_counter() - started) * 1e6)
        order = order[1:] + order[:1]
    stats = {
        name: {"p50_us": median(xs), "p99_us": percentile(xs, 99)} for name, xs in samples.items()
    }
    names = list(cases)
    select, library, floor, whole = (stats[n] for n in names)
    ratios = {
        "library_vs_select_p99": library["p99_us"] / select["p99_us"],
        "function_vs_bare_route_p99": whole["p99_us"] / floor["p99_us"],
        "function_vs_select_p99": whole["p99_us"] / select["p99_us"],
    }
    rows = [
        [names[0], f"{select['p50_us']:.0f}", f"{select['p99_us']:.0f}", "1.00", ""],
        [
            names[1],
            f"{library['p50_us']:.0f}",
            f"{library['p99_us']:.0f}",
            f"{ratios['library_vs_select_p99']:.2f}",
            _verdict(ratios["library_vs_select_p99"], "bare SELECT"),
        ],
        [names[2], f"{floor['p50_us']:.0f}", f"{floor['p99_us']:.0f}", "", ""],
        [
            names[3],
            f"{whole['p50_us']:.0f}",
            f"{whole['p99_us']:.0f}",
            f"{ratios['function_vs_bare_route_p99']:.2f}",
            _verdict(ratios["function_vs_bare_route_p99"], "bare route")
            + f"; {ratios['function_vs_select_p99']:.1f}x the bare SELECT",
        ],
    ]
    write_result(
        "status_read",
        {"calls": CALLS, "stats": stats, "ratios": ratios, "sql_per_read": 1},
    )
    title = (
        f"\nStatus read of an in-flight generation (1 SQL), {CALLS} calls per case, "
        "interleaved call by call, microseconds\n"
    )
    return title + table(["case", "p50 us", "p99 us", "p99 ratio", "target"], rows) + "\n"


def _verdict(ratio: float, against: str) -> str:
    return f"<= 2.0 vs {against} {'ok' if ratio <= 2.0 else 'MISSED'}"


if __name__ == "__main__":
    main()
