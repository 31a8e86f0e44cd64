"""Privacy export and retention cleanup at scale.

Export: a user with 1k, 10k and 100k generations. Each measurement runs in a fresh process
(the in-process S3 emulator's memory is not counted), and time and memory are measured in
separate runs: Python's memory tracer slows the code it traces about 5x.
  - `copy`: the baseline, a bare `COPY (select row_to_json(g) from public.generations g
    where user_id = ...) TO STDOUT` of the same rows, read to the end by psycopg;
  - `time`: the export job (`Privacy.build_export`: claim, the document from Postgres,
    links signed, streamed to the bucket in parts, finished), untraced;
  - `memory`: the same job on a new export under tracemalloc, for the heap's peak.
Median of BENCH_EXPORT_RUNS (3) for copy and time, interleaved. Targets (issue 15): ready
within 5x the bare COPY, 100k generations in <= 8 s, time linear (+-20 % per row), memory
flat from 1k to 100k.
Cleanup: 100k expired reference uploads deleted in bounded batches (objects and rows).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from _common import migrated_database, table, write_result  # noqa: E402

SIZES = [int(n) for n in os.environ.get("BENCH_EXPORT_SIZES", "1000,10000,100000").split(",")]
RUNS = int(os.environ.get("BENCH_EXPORT_RUNS", "3"))
REFERENCES = int(os.environ.get("BENCH_REFERENCES", "20000"))
TARGET_VS_COPY = 5.0
TARGET_100K_SECONDS = 8.0

CHILD = """
import json, os, sys, time, uuid
mode, subject = sys.argv[1], uuid.UUID(sys.argv[2])
if mode == "copy":
    import psycopg
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        started = time.perf_counter()
        rows = size = 0
        query = ("copy (select row_to_json(g) from public.generations g where user_id = %s)"
                 " to stdout")
        with conn.cursor().copy(query, (subject,)) as copy:
            for data in copy:
                rows += 1
                size += len(data)
        elapsed = time.perf_counter() - started
    sys.stdout.write(json.dumps({"s": elapsed, "rows": rows, "bytes": size}))
    raise SystemExit
from izgens.privacy import Privacy
privacy = Privacy.from_settings()
privacy.storage.client  # build the S3 client before measuring
if mode == "memory":
    import tracemalloc
    tracemalloc.start()
started = time.perf_counter()
assert privacy.build_export(subject)
elapsed = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1] if mode == "memory" else None
row = privacy.db.one("select status, bytes, rows_done, rows_total from public.data_exports"
                     " where id = %s", (subject,))
sys.stdout.write(json.dumps({"s": elapsed, "peak": peak, **row}))
"""


def child(mode: str, subject: uuid.UUID, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(subject)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout)
    if mode != "copy":
        assert result["status"] == "ready" and result["rows_done"] == result["rows_total"], result
    return result


def new_export(conn: psycopg.Connection, user: uuid.UUID) -> uuid.UUID:
    row = conn.execute(
        "insert into public.data_exports (user_id) values (%s) returning id", (user,)
    ).fetchone()
    assert row is not None
    return row[0]


def seed_user(conn: psycopg.Connection, generations: int) -> uuid.UUID:
    user = uuid.uuid4()
    conn.execute(
        "insert into auth.users (id, email) values (%s, %s)", (user, f"{user.hex[:8]}@example.com")
    )
    conn.execute("select izgens.ensure_profile(%s)", (user,))
    conn.execute(
        """
        insert into public.generations (user_id, status, prompt, model, resolution, ratio, duration,
            cost, idempotency_key, request_hash, provider_task_id, video_key, client_ip, completed_at)
        select %s, 'completed', 'a prompt of ordinary length about a paper boat on a river #' || g,
               'seedance-1-0-pro-fast-251015', '720p', '16:9', 5, 16, 'k' || g, 'h',
               'cgt-' || %s || '-' || g, 'videos/' || %s || '/' || gen_random_uuid() || '.mp4',
               '203.0.113.7', now()
          from generate_series(1, %s) g
        """,
        (user, user.hex, user, generations),
    )
    return user


def main() -> None:
    from izgens_local.s3 import start_local_s3

    s3 = start_local_s3(0, bucket="izgens-bench")
    rows: list[list[object]] = []
    with migrated_database() as url, psycopg.connect(url, autocommit=True) as conn:
        env = dict(os.environ)
        env.update(s3.env())
        env.update({"IZGENS_ENV": "test", "DATABASE_URL": url, "LOG_LEVEL": "WARNING"})
        results = []
        for size in SIZES:
            user = seed_user(conn, size)
            conn.execute("vacuum analyze public.generations")
            copies, builds = [], []
            for _ in range(RUNS):
                copies.append(child("copy", user, env))
                builds.append(child("time", new_export(conn, user), env))
            memory = child("memory", new_export(conn, user), env)
            assert copies[0]["rows"] == size
            results.append(
                {
                    "generations": size,
                    "copy_s": statistics.median(c["s"] for c in copies),
                    "export_s": statistics.median(b["s"] for b in builds),
                    "peak": memory["peak"],
                    "bytes": builds[0]["bytes"],
                    "copy_bytes": copies[0]["bytes"],
                }
            )
        base = results[0]
        base_per_row = base["export_s"] / base["generations"]
        for r in results:
            r["vs_copy"] = r["export_s"] / r["copy_s"]
            r["per_row_vs_first"] = (r["export_s"] / r["generations"]) / base_per_row
            rows.append(
                [
                    f"{r['generations']:,}",
                    f"{r['copy_s']:.3f}",
                    f"{r['export_s']:.3f}",
                    f"{r['vs_copy']:.2f}x",
                    f"{r['export_s'] / r['generations'] * 1000:.4f}",
                    f"{r['per_row_vs_first']:.2f}",
                    f"{r['peak'] / 2**20:.1f}",
                    f"{r['bytes'] / 2**20:.1f}",
                ]
            )
        sys.stdout.write(
            f"\nPrivacy export job (fresh process per run; median of {RUNS}; memory in a"
            " separate traced run)\n"
        )
        sys.stdout.write(
            table(
                [
                    "generations",
                    "bare COPY s",
                    "export s",
                    "vs COPY",
                    "ms/row",
                    "per-row vs 1st",
                    "peak heap MiB",
                    "export MiB",
                ],
                rows,
            )
            + "\n"
        )
        # linear: the time each added row costs, between consecutive sizes (the fixed cost
        # of a job, about 0.2 s, cancels out)
        slopes = [
            (b["export_s"] - a["export_s"]) / (b["generations"] - a["generations"]) * 1000
            for a, b in zip(results, results[1:], strict=False)
        ]
        sys.stdout.write(
            "time per added row between sizes: "
            + " -> ".join(f"{m:.4f} ms" for m in slopes)
            + f"\ntargets: <= {TARGET_VS_COPY:g}x the bare COPY at the largest size, 100k in"
            f" <= {TARGET_100K_SECONDS:g} s, time per added row within +-20 % of the first,"
            " heap flat\n"
        )

        user = seed_user(conn, 0)
        storage = s3.storage()
        conn.execute(
            """
            insert into public.reference_uploads (key, user_id, kind, content_type, bytes, expires_at)
            select 'references/' || %s || '/' || md5(g::text) || '.png', %s, 'image', 'image/png', 100,
                   now() - interval '1 hour'
              from generate_series(1, %s) g
            """,
            (user, user, REFERENCES),
        )
        os.environ.update(env)
        from izgens.privacy import Privacy

        privacy = Privacy.from_settings()
        batches, deleted, started = 0, 0, time.perf_counter()
        while True:
            n = privacy.delete_expired_references(1000)
            if n == 0:
                break
            batches += 1
            deleted += n
        elapsed = time.perf_counter() - started
        left = conn.execute("select count(*) from public.reference_uploads").fetchone()[0]
        assert deleted == REFERENCES and left == 0
        del storage
        sys.stdout.write(
            f"\nRetention cleanup: {deleted:,} expired references in {batches} bounded batches of 1000, "
            f"{elapsed:.1f} s ({elapsed / deleted * 1000:.3f} ms/reference)\n"
        )
        write_result(
            "export",
            {
                "exports": [
                    {
                        "generations": r["generations"],
                        "copy_seconds": r["copy_s"],
                        "seconds": r["export_s"],
                        "vs_copy": r["vs_copy"],
                        "ms_per_row": r["export_s"] / r["generations"] * 1000,
                        "per_row_vs_first": r["per_row_vs_first"],
                        "peak_heap_mib": r["peak"] / 2**20,
                        "export_mib": r["bytes"] / 2**20,
                    }
                    for r in results
                ],
                "targets": {"vs_copy": TARGET_VS_COPY, "seconds_100k": TARGET_100K_SECONDS},
                "slopes_ms_per_row": slopes,
                "cleanup": {
                    "references": deleted,
                    "batches": batches,
                    "seconds": elapsed,
                    "ms_per_reference": elapsed / deleted * 1000,
                },
            },
        )
    s3.stop()


if __name__ == "__main__":
    main()
