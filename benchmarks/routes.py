"""SQL round trips per route, and payment callback throughput, over real HTTP through the
dev server (every function in one process) with moto S3 and both provider simulators.

Round trips are counted per request: every call the functions' Database runs is attributed
to the request id that ran it (the dev server also serves the simulators' callbacks). A
rate-limit check is never a round trip of its own: it is folded into the call it guards.

Callback throughput: BENCH_CALLBACKS signed Plisio `completed` callbacks for as many
pending purchases, posted by 8 concurrent clients to `/plisio_webhook/plisio/callback`;
each is verified, stored and credited in one SQL call. Checked after: every purchase
credited exactly once, the ledger check empty.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import (  # noqa: E402
    PLISIO_SECRET,
    dev_stack,
    median,
    migrated_database,
    percentile,
    table,
    write_result,
)

from tests.payments.support import callback_body  # noqa: E402
from tests.support.users import make_user  # noqa: E402

CALLBACKS = int(os.environ.get("BENCH_CALLBACKS", "400"))
CLIENTS = 8

# route -> the budget the design promises (None: reported only)
BUDGET: dict[str, int | None] = {
    "POST /generate/generations": 2,
    "GET /status/generations/{id}": 1,
    "GET /status/generations": 1,
    "GET /generate/quote": 1,
    "POST /generate/uploads": 1,
    "POST /status/callbacks/byteplus (final generation)": 1,
    "DELETE /status/generations/{id}": None,
    "GET /account/me": None,
    "PATCH /account/me": None,
    "GET /account/ledger": 1,
    "GET /account/packs": 1,
    "GET /account/purchases": 1,
    "POST /account/checkout": None,
    "POST /privacy_export/privacy/exports": None,  # builds the export inline
    "POST /plisio_webhook/plisio/callback (verified)": 1,
    "any route, forged token": 1,
}


class Counter:
    """SQL calls of the functions' Database, by the request id that ran them."""

    def __init__(self, database: Any) -> None:
        from izgens.logs import request_id_var

        self.by_request: dict[str | None, int] = {}
        self._lock = threading.Lock()
        run = database._run

        def counted(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                rid = request_id_var.get()
                self.by_request[rid] = self.by_request.get(rid, 0) + 1
            return run(*args, **kwargs)

        database._run = counted

    def of(self, request_id: str) -> int:
        with self._lock:
            return self.by_request.get(request_id, 0)


def main() -> None:
    from izgens.db import Database, get_database
    from izgens_local.byteplus_sim import SimConfig

    config = SimConfig(api_key="bench-byteplus-key", delay=0.2, callback_retry_delay=0.2)
    with (
        migrated_database() as url,
        dev_stack(
            url,
            config,
            plisio=True,
            RATE_CHECKOUT_USER="100000",
            RATE_CHECKOUT_IP="100000",
        ) as stack,
    ):
        admin = Database(url, size=2, name="izgens-bench-admin")
        try:
            trips = round_trips(stack, admin, Counter(get_database()))
            callbacks = callback_throughput(stack, admin)
        finally:
            admin.close()
    rows = []
    for route, (count, status) in trips.items():
        budget = BUDGET.get(route)
        verdict = "" if budget is None else ("ok" if count <= budget else "OVER")
        rows.append([route, status, count, "" if budget is None else budget, verdict])
    sys.stdout.write("\nSQL round trips per request (dev server, real HTTP)\n")
    sys.stdout.write(table(["route", "status", "SQL", "budget", ""], rows) + "\n")
    sys.stdout.write(
        f"\nPayment callbacks: {callbacks['callbacks']} verified Plisio callbacks, "
        f"{CLIENTS} concurrent clients: {callbacks['per_second']:.0f}/s, "
        f"p50 {callbacks['p50_ms']:.1f} ms, p99 {callbacks['p99_ms']:.1f} ms, "
        f"credited once each: {callbacks['credited_once']}\n"
    )
    write_result(
        "routes",
        {
            "round_trips": {
                route: {"sql": count, "status": status, "budget": BUDGET.get(route)}
                for route, (count, status) in trips.items()
            },
            "callbacks": callbacks,
        },
    )


def round_trips(stack: Any, admin: Any, counter: Counter) -> dict[str, tuple[int, int]]:
    user = make_user(admin, credits=100_000)
    auth = {"Authorization": f"Bearer {stack.token(user)}"}
    found: dict[str, tuple[int, int]] = {}

    with httpx.Client(base_url=stack.base, timeout=60) as client:

        def call(label: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
            request_id = f"bench-{uuid.uuid4().hex}"
            headers = {**kwargs.pop("headers", {}), "X-Request-Id": request_id}
            response = client.request(method, path, headers=headers, **kwargs)
            assert response.status_code < 400 or label.endswith("forged token"), response.text
            found[label] = (counter.of(request_id), response.status_code)
            return response

        gen = call(
            "POST /generate/generations",
            "POST",
            "/generate/generations",
            json={"prompt": "a paper boat on a river"},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        ).json()
        assert gen["status"] == "submitted", gen
        call(
            "GET /status/generations/{id}", "GET", f"/status/generations/{gen['id']}", headers=auth
        )
        call("GET /status/generations", "GET", "/status/generations", headers=auth)
        call("GET /generate/quote", "GET", "/generate/quote", headers=auth)
        call(
            "POST /generate/uploads",
            "POST",
            "/generate/uploads",
            json={"filename": "ref.png", "content_type": "image/png", "bytes": 1000},
            headers=auth,
        )
        deadline = time.monotonic() + 30
        while (
            admin.one("select status from public.generations where id = %s", (gen["id"],))["status"]
            != "completed"
        ):
            assert time.monotonic() < deadline, "the generation did not complete"
            time.sleep(0.05)
        task = admin.one(
            "select provider_task_id from public.generations where id = %s", (gen["id"],)
        )["provider_task_id"]
        from izgens.generations import callback_token

        token = callback_token(uuid.UUID(gen["id"]), "bench-callback-signing-key-0123456789")
        call(
            "POST /status/callbacks/byteplus (final generation)",
            "POST",
            "/status/callbacks/byteplus",
            params={"token": token},
            json={"id": task, "status": "succeeded"},
        )
        call("GET /account/me", "GET", "/account/me", headers=auth)
        call(
            "PATCH /account/me",
            "PATCH",
            "/account/me",
            json={"display_name": "Bench"},
            headers=auth,
        )
        call("GET /account/ledger", "GET", "/account/ledger", headers=auth)
        call("GET /account/packs", "GET", "/account/packs", headers=auth)
        call("GET /account/purchases", "GET", "/account/purchases", headers=auth)
        call(
            "POST /account/checkout",
            "POST",
            "/account/checkout",
            json={"pack_id": "starter"},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        call(
            "POST /privacy_export/privacy/exports",
            "POST",
            "/privacy_export/privacy/exports",
            headers=auth,
        )
        purchase = admin.one(
            "select id from izgens.start_checkout(%s, 'starter', %s, null, 1000, 60, null)",
            (user, uuid.uuid4().hex),
            idempotent=False,
        )["id"]
        call(
            "POST /plisio_webhook/plisio/callback (verified)",
            "POST",
            "/plisio_webhook/plisio/callback",
            params={"json": "true"},
            content=callback_body(
                str(purchase),
                "completed",
                txn_id=f"bench{uuid.uuid4().hex[:16]}",
                secret=PLISIO_SECRET,
            ),
            headers={"Content-Type": "application/json"},
        )
        call(
            "DELETE /status/generations/{id}",
            "DELETE",
            f"/status/generations/{gen['id']}",
            headers=auth,
        )
        call(
            "any route, forged token",
            "GET",
            "/status/generations",
            headers={"Authorization": "Bearer " + stack.token(user)[:-4] + "AAAA"},
        )
    return found


def callback_throughput(stack: Any, admin: Any) -> dict[str, Any]:
    user = make_user(admin, credits=0)
    purchases = [
        str(
            admin.one(
                "select id from izgens.start_checkout(%s, 'starter', %s, null, 1000000, 60, null)",
                (user, uuid.uuid4().hex),
                idempotent=False,
            )["id"]
        )
        for _ in range(CALLBACKS)
    ]
    bodies = [
        callback_body(p, "completed", txn_id=f"tp{i:014d}", secret=PLISIO_SECRET)
        for i, p in enumerate(purchases)
    ]
    latencies: list[float] = []
    lock = threading.Lock()
    limits = httpx.Limits(max_connections=CLIENTS)

    with httpx.Client(base_url=stack.base, timeout=60, limits=limits) as client:

        def post(body: bytes) -> None:
            started = time.perf_counter()
            response = client.post(
                "/plisio_webhook/plisio/callback",
                params={"json": "true"},
                content=body,
                headers={"Content-Type": "application/json"},
            )
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, response.text
            with lock:
                latencies.append(elapsed)

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(post, bodies))
        elapsed = time.perf_counter() - started
    credited = admin.one(
        "select count(*) as n from public.purchases where id = any(%s::uuid[])"
        " and status = 'completed'",
        (purchases,),
    )["n"]
    balance = admin.one("select balance from public.profiles where user_id = %s", (user,))[
        "balance"
    ]
    per_pack = admin.one("select credits from public.credit_packs where id = 'starter'")
    mismatches = admin.all("select * from izgens.ledger_mismatches()")
    once = (
        credited == CALLBACKS
        and not mismatches
        and (per_pack is None or balance == CALLBACKS * per_pack["credits"])
    )
    return {
        "callbacks": CALLBACKS,
        "clients": CLIENTS,
        "seconds": elapsed,
        "per_second": CALLBACKS / elapsed,
        "p50_ms": median(latencies),
        "p99_ms": percentile(latencies, 99),
        "credited_once": once,
    }


if __name__ == "__main__":
    main()
