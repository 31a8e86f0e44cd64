"""Privacy export and retention cleanup at scale.

Export: a user with 1k, 10k and 100k generations; each export is built in a fresh process
(so the in-process S3 emulator's memory is not counted) and reports wall time and the
Python heap's peak (tracemalloc). Target: time linear in rows (±20 % per row), memory flat.
Cleanup: 100k expired reference uploads deleted in bounded batches (objects and rows).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).parent))
from _common import migrated_database, table, write_result  # noqa: E402

# `make bench` sizes; the full run is BENCH_EXPORT_SIZES=1000,10000,100000 BENCH_REFERENCES=100000
SIZES = [int(n) for n in os.environ.get("BENCH_EXPORT_SIZES", "1000,10000,30000").split(",")]
REFERENCES = int(os.environ.get("BENCH_REFERENCES", "20000"))

CHILD = """
import json, sys, time, tracemalloc, uuid
from izgens.privacy import Privacy
privacy = Privacy.from_settings()
privacy.storage.client  # build the S3 client before measuring
tracemalloc.start()
started = time.perf_counter()
assert privacy.build_export(uuid.UUID(sys.argv[1]))
elapsed = time.perf_counter() - started
peak = tracemalloc.get_traced_memory()[1]
row = privacy.db.one("select status, bytes from public.data_exports where id = %s", (uuid.UUID(sys.argv[1]),))
sys.stdout.write(json.dumps({"s": elapsed, "peak": peak, "status": row["status"], "bytes": row["bytes"]}))
"""


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
            export_id = conn.execute(
                "insert into public.data_exports (user_id) values (%s) returning id", (user,)
            ).fetchone()[0]
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(export_id)],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-3000:])
            result = json.loads(out.stdout)
            assert result["status"] == "ready"
            results.append((size, result))
        base_size, base = results[0]
        for size, result in results:
            per_row = result["s"] / size * 1000
            base_per_row = base["s"] / base_size * 1000
            rows.append(
                [
                    f"{size:,}",
                    f"{result['s']:.2f}",
                    f"{per_row:.3f}",
                    f"{per_row / base_per_row:.2f}",
                    f"{result['peak'] / 2**20:.1f}",
                    f"{result['bytes'] / 2**20:.1f}",
                ]
            )
        sys.stdout.write("\nPrivacy export (fresh process per export)\n")
        sys.stdout.write(
            table(
                [
                    "generations",
                    "seconds",
                    "ms/row",
                    "per-row vs 1st",
                    "peak heap MiB",
                    "export MiB",
                ],
                rows,
            )
            + "\n"
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
        base_per_row = base["s"] / base_size
        write_result(
            "export",
            {
                "exports": [
                    {
                        "generations": size,
                        "seconds": result["s"],
                        "ms_per_row": result["s"] / size * 1000,
                        "per_row_vs_first": (result["s"] / size) / base_per_row,
                        "peak_heap_mib": result["peak"] / 2**20,
                        "export_mib": result["bytes"] / 2**20,
                    }
                    for size, result in results
                ],
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
