"""A burst of generations through the dev server, and what it proves.

Many users each POST their generations to `/generate/generations` over real HTTP at once
(each user's in sequence, so arrival order within a user is defined); the Seedance simulator
runs with its capacity limits; a loop runs the cleanup jobs as the schedule would. When every
generation has ended, the books are checked: none lost (nothing in flight), every failure
refunded once, no generation submitted twice, each user's generations reaching the provider
in arrival order, the functions' database pool never exhausted. Used by
`benchmarks/burst.py` (1,000 generations from 200 users) and `tests/faults/test_burst.py`
(a scaled-down run in CI).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from izgens.db import Database
from izgens_local.byteplus_sim import SimServer

__all__ = ["BurstPlan", "BurstReport", "run_burst"]

FAIL_MARKER = "[sim:fail=OutputVideoSensitiveContentDetected]"


@dataclass
class BurstPlan:
    users: int = 200
    per_user: int = 5
    clients: int = 50  # concurrent HTTP clients posting
    job_interval: float = 1.0  # seconds between cleanup runs
    timeout: float = 900.0  # the drain must end within this
    fail_every: int = 20  # every n-th generation is refused by the provider's moderation
    credits: int = 1_000_000


@dataclass
class BurstReport:
    generations: int
    users: int
    answers: dict[str, int]  # HTTP status of each POST → count
    client_retries: dict[str, int]  # POSTs sent again (same key) after a transport error
    admitted_202: int
    admit_seconds: float
    drain_seconds: float  # first POST sent → last generation final
    final: dict[str, int]  # final status → count
    lost: int  # still in flight at the end
    failed_unrefunded: int
    charged_twice: int
    expected_failures: int
    submitted_twice: int
    completed_without_task: int
    create_requests: int  # creates the provider saw (429 refusals included)
    fifo_pairs: int  # pairs of one user's generations that both reached the provider
    fifo_inversions: int  # ... of which the younger reached it first
    fifo_max_lag_ms: float  # the most the younger was ahead
    ledger_mismatches: int
    pool_size: int
    pool_peak: int
    pool_waited: int  # calls that waited for a free connection
    pool_exhausted: int
    job_runs: int
    job_errors: int
    provider: dict[str, float]
    provider_busy_share: float  # of the drain, the mean share of running slots in use
    theoretical_min_seconds: float
    drain_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def problems(self) -> list[str]:
        """What breaks the promises (empty when the burst was clean)."""
        found = []
        if self.answers != {"202": self.generations}:
            found.append(f"answers other than 202: {self.answers}")
        if self.lost:
            found.append(f"{self.lost} generations still in flight")
        if self.failed_unrefunded or self.charged_twice or self.ledger_mismatches:
            found.append("money: unrefunded failures, double charges or ledger mismatches")
        if self.final.get("failed", 0) != self.expected_failures:
            found.append(f"failed {self.final.get('failed', 0)}, expected {self.expected_failures}")
        if self.submitted_twice or self.completed_without_task:
            found.append(f"submitted twice: {self.submitted_twice}")
        if self.pool_exhausted or self.job_errors:
            found.append(f"pool exhausted {self.pool_exhausted}, job errors {self.job_errors}")
        return found


def _make_users(db: Database, count: int, credits: int) -> list[uuid.UUID]:
    users = [uuid.uuid4() for _ in range(count)]
    for user in users:
        db.execute(
            "insert into auth.users (id, email) values (%s, %s)",
            (user, f"burst-{user.hex[:12]}@example.com"),
        )
        db.one("select * from izgens.ensure_profile(%s)", (user,))
        db.one("select izgens.confirm_age(%s)", (user,))
        db.one("select izgens.grant_credits(%s, %s, %s)", (user, credits, f"burst:{user}"))
    return users


class _JobLoop:
    """The schedule: the cleanup jobs every `interval` seconds until stopped."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.runs = 0
        self.errors = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="burst-jobs", daemon=True)

    def start(self) -> _JobLoop:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _loop(self) -> None:
        from izgens.cleanup import run_jobs

        while not self._stop.wait(self.interval):
            result = run_jobs(["generations"])
            self.runs += 1
            self.errors += sum(1 for counts in result.values() if "error" in counts)


def run_burst(
    base_url: str,
    token: Callable[[uuid.UUID], str],
    db: Database,
    server_db: Database,
    sim: SimServer,
    plan: BurstPlan,
) -> BurstReport:
    """Run the burst; `db` reads and checks, `server_db` is the pool the functions use."""
    users = _make_users(db, plan.users, plan.credits)
    config = sim.config
    headers = {
        user: {
            "Authorization": f"Bearer {token(user)}",
            # one address per user, as a crowd would have (trusted only when configured)
            "X-Forwarded-For": f"198.18.{i // 250}.{i % 250 + 1}",
        }
        for i, user in enumerate(users)
    }
    answers: Counter[str] = Counter()
    retried: list[str] = []
    lock = threading.Lock()
    counter = iter(range(plan.users * plan.per_user))

    def post_all(user: uuid.UUID, client: httpx.Client) -> None:
        for n in range(plan.per_user):
            with lock:
                index = next(counter)
            marker = f" {FAIL_MARKER}" if plan.fail_every and index % plan.fail_every == 0 else ""
            key = uuid.uuid4().hex
            for attempt in range(1, 4):
                try:
                    response = client.post(
                        "/generate/generations",
                        json={"prompt": f"burst #{n} of {user.hex[:8]}{marker}"},
                        headers={**headers[user], "Idempotency-Key": key},
                    )
                    break
                except httpx.TransportError as exc:
                    # what a client does when the connection fails: the same request again,
                    # with the same key (at most one generation, one charge)
                    with lock:
                        retried.append(type(exc).__name__)
                    if attempt == 3:
                        raise
            with lock:
                answers[str(response.status_code)] += 1

    server_db.peak_in_use = server_db.in_use
    exhausted_before = server_db.exhausted
    waited_before = server_db.waited
    jobs = _JobLoop(plan.job_interval).start()
    samples: list[int] = []
    limits = httpx.Limits(max_connections=plan.clients, max_keepalive_connections=plan.clients)
    started_wall = time.time()
    started = time.perf_counter()
    try:
        with (
            httpx.Client(base_url=base_url, timeout=120, limits=limits) as client,
            ThreadPoolExecutor(plan.clients, thread_name_prefix="burst-client") as pool,
        ):
            for future in [pool.submit(post_all, user, client) for user in users]:
                future.result()
        admit_seconds = time.perf_counter() - started
        deadline = time.monotonic() + plan.timeout
        while time.monotonic() < deadline:
            samples.append(_running(sim))
            row = db.one(
                "select count(*) as n from public.generations"
                " where status in ('queued', 'submitted', 'running', 'storing')"
            )
            if row is not None and row["n"] == 0:
                break
            time.sleep(0.25)
    finally:
        jobs.stop()
    _wait_callbacks(sim)
    finished = db.one("select extract(epoch from max(finished_at)) as t from public.generations")
    last = float(finished["t"]) if finished and finished["t"] is not None else time.time()
    drain_seconds = last - started_wall
    total = plan.users * plan.per_user
    report = _books(db, sim)
    tasks = report.pop("provider_tasks")
    run_time = config.delay * (1 - min(max(config.queued_share, 0.0), 1.0))
    bound_slots = tasks / max(config.max_running, 1) * run_time + (config.delay - run_time)
    bound_rpm = max(tasks - config.rpm, 0) / max(config.rpm, 1) * 60
    minimum = max(bound_slots, bound_rpm)
    return BurstReport(
        generations=total,
        users=plan.users,
        answers=dict(answers),
        client_retries=dict(Counter(retried)),
        admitted_202=answers.get("202", 0),
        admit_seconds=round(admit_seconds, 2),
        drain_seconds=round(drain_seconds, 2),
        pool_size=server_db.size,
        pool_peak=server_db.peak_in_use,
        pool_waited=server_db.waited - waited_before,
        pool_exhausted=server_db.exhausted - exhausted_before,
        job_runs=jobs.runs,
        job_errors=jobs.errors,
        provider={
            "max_running": config.max_running,
            "max_queued": config.max_queued,
            "rpm": config.rpm,
            "delay": config.delay,
            "queued_share": config.queued_share,
            "run_seconds": run_time,
        },
        provider_busy_share=round(
            sum(samples) / (len(samples) * max(config.max_running, 1)) if samples else 0.0, 3
        ),
        theoretical_min_seconds=round(minimum, 2),
        drain_ratio=round(drain_seconds / minimum, 3) if minimum else 0.0,
        expected_failures=len(range(0, total, plan.fail_every)) if plan.fail_every else 0,
        **report,
    )


def _running(sim: SimServer) -> int:
    with sim.engine._lock:
        return sum(1 for t in sim.engine.tasks.values() if t.status == "running")


def _wait_callbacks(sim: SimServer, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sim.engine._lock:
            if not sim.engine._draining:
                return
        time.sleep(0.05)


def _books(db: Database, sim: SimServer) -> dict[str, Any]:
    rows = db.all(
        "select g.id, g.user_id, g.status, g.created_at, g.provider_task_id,"
        " (select count(*) from public.credit_ledger l"
        "   where l.ref = g.id::text and l.reason = 'generation') as debits,"
        " (select count(*) from public.credit_ledger l"
        "   where l.ref = g.id::text and l.reason = 'generation_refund') as refunds"
        " from public.generations g"
    )
    final = Counter(r["status"] for r in rows)
    with sim.engine._lock:
        tasks = [
            (t.safety_identifier or "", t.seq, t.created_at) for t in sim.engine.tasks.values()
        ]
        creates = sum(sim.engine.create_requests.values())
    by_generation: dict[str, list[tuple[int, float]]] = {}
    for ident, seq, created in tasks:
        by_generation.setdefault(ident.rsplit("-", 1)[-1], []).append((seq, created))
    arrival: dict[uuid.UUID, list[tuple[Any, str]]] = {}
    for r in rows:
        arrival.setdefault(r["user_id"], []).append((r["created_at"], r["id"].hex))
    pairs = inversions = 0
    max_lag = 0.0
    for mine in arrival.values():
        reached = [by_generation[h][0] for _, h in sorted(mine) if h in by_generation]
        for i, (seq_i, at_i) in enumerate(reached):
            for seq_j, at_j in reached[i + 1 :]:
                pairs += 1
                if seq_j < seq_i:
                    inversions += 1
                    max_lag = max(max_lag, (at_i - at_j) * 1000)
    mismatches = db.all("select * from izgens.ledger_mismatches()")
    return {
        "final": dict(final),
        "lost": sum(final.get(s, 0) for s in ("queued", "submitted", "running", "storing")),
        "failed_unrefunded": sum(
            1 for r in rows if r["status"] in ("failed", "canceled") and r["refunds"] != 1
        ),
        "charged_twice": sum(1 for r in rows if r["debits"] != 1 or r["refunds"] > 1),
        "submitted_twice": sum(1 for v in by_generation.values() if len(v) > 1),
        "completed_without_task": sum(
            1 for r in rows if r["status"] == "completed" and r["id"].hex not in by_generation
        ),
        "create_requests": creates,
        "fifo_pairs": pairs,
        "fifo_inversions": inversions,
        "fifo_max_lag_ms": round(max_lag, 1),
        "ledger_mismatches": len(mismatches),
        "provider_tasks": len(tasks),
    }
