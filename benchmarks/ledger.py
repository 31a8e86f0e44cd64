"""Ledger throughput under contention: 32 threads spending on ONE account.

Compares, on the same Postgres in the same run, the raw ceiling (a bare single-row
`UPDATE ... SET balance = balance - 1`) with our SQL functions: the ledger primitive
(`izgens.debit_credits`: lock, check, update, append) and a whole generation admission
(`izgens.start_generation`: gates, rate limit, idempotency, price, debit, insert).
Target: ledger primitive >= 0.75x the raw ceiling. Median of 3 rounds each.

Also measured: the append floor, one bare SQL statement that moves the balance and appends
the ledger row (no function, no idempotency check, no error paths). No ledger can be faster
than it, so `debit_credits` against it is the cost of our own code, and the floor against
the raw ceiling is the cost of the append (its indexes and foreign key).
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, migrated_database, table, write_result  # noqa: E402

THREADS = 32
OPS_PER_THREAD = 60
TARGET = 0.85  # of the append floor (DESIGN.md): the append itself is the cost


def run(url: str, op: Callable[[psycopg.Connection, int, int], None]) -> float:
    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=None) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        barrier.wait()
        try:
            for i in range(OPS_PER_THREAD):
                op(conns[t], t, i)
        except Exception as exc:  # noqa: BLE001 - reported after the run
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for th in threads:
        th.start()
    barrier.wait()
    started = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    if errors:
        raise errors[0]
    return THREADS * OPS_PER_THREAD / elapsed


def main() -> None:
    total = THREADS * OPS_PER_THREAD
    with migrated_database() as url, psycopg.connect(url, autocommit=True) as admin:
        admin.execute("create table bench_raw (id int primary key, balance bigint not null)")
        spec = json.dumps(
            {
                "prompt": "bench",
                "model": "seedance-1-0-pro-fast-251015",
                "resolution": "720p",
                "ratio": "16:9",
                "duration": 5,
                "generate_audio": False,
            }
        )
        results: dict[str, list[float]] = {"raw": [], "append": [], "ledger": [], "admission": []}
        for round_no in range(3):
            admin.execute("delete from bench_raw")
            admin.execute("insert into bench_raw values (1, %s)", (total,))
            results["raw"].append(
                run(
                    url,
                    lambda c, t, i: c.execute(
                        "update bench_raw set balance = balance - 1 where id = 1 and balance >= 1"
                    ),
                )
            )
            row = admin.execute("select balance from bench_raw").fetchone()
            assert row is not None and row[0] == 0, "raw ceiling lost updates"

            floor_user = uuid.uuid4()
            admin.execute("insert into auth.users (id) values (%s)", (floor_user,))
            admin.execute("select izgens.ensure_profile(%s)", (floor_user,))
            admin.execute(
                "select izgens.grant_credits(%s, %s, %s)", (floor_user, total, f"fund-{floor_user}")
            )
            results["append"].append(
                run(
                    url,
                    lambda c, t, i, u=floor_user, r=round_no: c.execute(
                        "with moved as (update public.profiles"
                        " set balance = balance - 1, updated_at = now()"
                        " where user_id = %s and balance >= 1 returning user_id, balance)"
                        " insert into public.credit_ledger"
                        " (user_id, delta, balance_after, reason, ref)"
                        " select user_id, -1, balance, 'operator_debit', %s from moved",
                        (u, f"floor-r{r}-{t}-{i}"),
                    ),
                )
            )

            user = uuid.uuid4()
            admin.execute("insert into auth.users (id) values (%s)", (user,))
            admin.execute("select izgens.ensure_profile(%s)", (user,))
            admin.execute("select izgens.grant_credits(%s, %s, %s)", (user, total, f"fund-{user}"))
            results["ledger"].append(
                run(
                    url,
                    lambda c, t, i, u=user, r=round_no: c.execute(
                        "select izgens.debit_credits(%s, 1, %s)", (u, f"r{r}-{t}-{i}")
                    ),
                )
            )

            admission_user = uuid.uuid4()
            admin.execute("insert into auth.users (id) values (%s)", (admission_user,))
            admin.execute("select izgens.confirm_age(%s)", (admission_user,))
            admin.execute(
                "select izgens.grant_credits(%s, %s, %s)",
                (admission_user, total * 16, f"fund-{admission_user}"),
            )
            results["admission"].append(
                run(
                    url,
                    lambda c, t, i, u=admission_user, r=round_no: c.execute(
                        "select izgens.start_generation(%s, %s, 'h', %s, 103818, 0, null, null, null, 60)",
                        (u, f"k{r}-{t}-{i}", spec),
                    ),
                )
            )
            bad = admin.execute("select * from izgens.ledger_mismatches()").fetchall()
            assert bad == [], f"ledger invariant broken: {bad}"
            balances = admin.execute(
                "select balance from public.profiles where user_id in (%s, %s, %s)"
                " order by balance",
                (user, admission_user, floor_user),
            ).fetchall()
            assert balances[1][0] == 0, "ledger primitive or floor lost or doubled a debit"
        raw = median(results["raw"])
        append = median(results["append"])
        rows = [
            ["raw UPDATE ceiling", f"{raw:,.0f}", "1.00", ""],
            [
                "append floor (UPDATE + INSERT, one statement)",
                f"{append:,.0f}",
                f"{append / raw:.2f}",
                "(report)",
            ],
            [
                "izgens.debit_credits (ledger)",
                f"{median(results['ledger']):,.0f}",
                f"{median(results['ledger']) / raw:.2f}",
                f">= {TARGET} of the floor: {median(results['ledger']) / append:.2f}",
            ],
            [
                "izgens.start_generation (admission)",
                f"{median(results['admission']):,.0f}",
                f"{median(results['admission']) / raw:.2f}",
                "(report)",
            ],
        ]
        sys.stdout.write(
            f"\nLedger contention: {THREADS} threads, one account, {total} ops/round, median of 3\n"
        )
        sys.stdout.write(table(["case", "ops/s", "ratio", "target"], rows) + "\n")
        sys.stdout.write("anomalies: 0 (balances exact, ledger check empty after every round)\n")
        version = admin.execute("show server_version").fetchone()
        write_result(
            "ledger",
            {
                "postgres": version[0] if version else "",
                "threads": THREADS,
                "ops_per_round": total,
                "raw_ops_s": raw,
                "append_ops_s": append,
                "append_ratio": append / raw,
                "ledger_vs_append": median(results["ledger"]) / append,
                "ledger_ops_s": median(results["ledger"]),
                "admission_ops_s": median(results["admission"]),
                "ledger_ratio": median(results["ledger"]) / raw,
                "admission_ratio": median(results["admission"]) / raw,
                "target": TARGET,
            },
        )


if __name__ == "__main__":
    main()
