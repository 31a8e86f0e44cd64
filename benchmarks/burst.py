"""Scale burst: 1,000 generations from 200 users at once, against the Seedance simulator with
a real account's capacity limits (10 running tasks, 120 queued, 600 creates a minute).

Every POST goes over real HTTP through the dev server (all functions in one process, its
database pool DB_POOL_SIZE=16); the simulator calls back into it; a loop runs the cleanup
jobs every second as the schedule would. Every 20th prompt is refused by the provider's
output moderation (a failure after acceptance: refunded). Each task takes BENCH_BURST_DELAY
seconds (default 1.2) holding a running slot (`queued_share` 0: no extra queue latency), so
the provider's own minimum to finish the tasks is tasks / 10 x delay, or the creates-per-
minute bound when that is longer; the drain time is reported against it as a ratio.

    python benchmarks/burst.py            # 200 users x 5
    BENCH_BURST_USERS=20 python benchmarks/burst.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import dev_stack, migrated_database, table, write_result  # noqa: E402

USERS = int(os.environ.get("BENCH_BURST_USERS", "200"))
PER_USER = int(os.environ.get("BENCH_BURST_PER_USER", "5"))
DELAY = float(os.environ.get("BENCH_BURST_DELAY", "1.2"))


def main() -> None:
    from izgens.db import Database, get_database
    from izgens_local.burst import BurstPlan, run_burst
    from izgens_local.byteplus_sim import SimConfig

    config = SimConfig(
        api_key="bench-byteplus-key",
        delay=DELAY,
        queued_share=0.0,
        max_running=10,
        max_queued=120,
        rpm=600,
        callback_retry_delay=0.5,
    )
    plan = BurstPlan(users=USERS, per_user=PER_USER, clients=50, job_interval=1.0)
    with (
        migrated_database() as url,
        dev_stack(url, config, TRUSTED_PROXY_HOPS="1") as stack,
    ):
        admin = Database(url, size=2, name="izgens-bench-admin")
        try:
            report = run_burst(stack.base, stack.token, admin, get_database(), stack.sim, plan)
        finally:
            admin.close()
    problems = report.problems()
    rows = [
        ["generations / users", f"{report.generations} / {report.users}"],
        ["HTTP answers", ", ".join(f"{k}: {v}" for k, v in sorted(report.answers.items()))],
        ["client retries (transport errors, same key)", report.client_retries or "none"],
        ["admitted in (s)", f"{report.admit_seconds:.1f}"],
        ["final", ", ".join(f"{k} {v}" for k, v in sorted(report.final.items()))],
        ["lost (still in flight)", report.lost],
        ["failed without exactly one refund", report.failed_unrefunded],
        ["charged twice", report.charged_twice],
        ["submitted twice", report.submitted_twice],
        ["creates sent (429 refusals included)", report.create_requests],
        [
            "FIFO within a user (inverted pairs)",
            f"{report.fifo_inversions} of {report.fifo_pairs}"
            + (f", max {report.fifo_max_lag_ms:.0f} ms" if report.fifo_inversions else ""),
        ],
        ["ledger mismatches", report.ledger_mismatches],
        [
            "database pool: peak in use / size",
            f"{report.pool_peak} / {report.pool_size}; {report.pool_waited} calls waited for"
            f" a connection, {report.pool_exhausted} gave up",
        ],
        ["cleanup runs (errors)", f"{report.job_runs} ({report.job_errors})"],
        ["provider running slots busy (mean)", f"{report.provider_busy_share:.0%}"],
        ["drain (s)", f"{report.drain_seconds:.1f}"],
        [
            "provider minimum (s)",
            f"{report.theoretical_min_seconds:.1f}"
            f" (tasks / {config.max_running} x {config.delay} s)",
        ],
        ["drain ratio", f"{report.drain_ratio:.2f}"],
        ["verdict", "ok" if not problems else "; ".join(problems)],
    ]
    sys.stdout.write(
        f"\nScale burst: {report.generations} generations from {report.users} users over HTTP "
        f"(max_running {config.max_running}, max_queued {config.max_queued}, rpm {config.rpm}, "
        f"task {config.delay} s)\n"
    )
    sys.stdout.write(table(["", "value"], rows) + "\n")
    write_result("burst", report.to_dict() | {"problems": problems})
    if problems:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
