"""Helpers for the benchmarks: a throwaway migrated Postgres, the dev stack around it,
table printing, and each benchmark's figures as JSON for `benchmarks/report.py`."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from izgens.migrations import apply_migrations


@contextlib.contextmanager
def migrated_database() -> Iterator[str]:
    """A fresh migrated database: on DATABASE_URL's server if set, else embedded Postgres
    with its default (durable) settings, so the numbers mean what production means."""
    given = os.environ.get("DATABASE_URL")
    pg = None
    pgdata = None
    if given:
        admin = given
    else:
        from izgens_local.pg import start_postgres

        pgdata = Path(tempfile.mkdtemp(prefix="izgens-bench-pg-"))
        pg = start_postgres(pgdata)
        admin = pg.url
    name = f"izgens_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = make_conninfo(admin, dbname=name)
    try:
        apply_migrations(url, bootstrap_auth=True)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if pg is not None:
            pg.stop()
        if pgdata is not None:
            shutil.rmtree(pgdata, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_result(name: str, payload: dict[str, Any]) -> None:
    """`<BENCH_RESULTS>/<name>.json`, read by benchmarks/report.py (nothing when unset)."""
    directory = os.environ.get("BENCH_RESULTS")
    if not directory:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass(frozen=True)
class LambdaContext:
    """What Lambda passes a handler beside the event, for in-process calls."""

    aws_request_id: str
    function_name: str = "bench"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 10_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PLISIO_SECRET = "bench-plisio-secret-0000"


@dataclass
class DevStack:
    base: str
    signer: Any
    sim: Any
    s3: Any

    def token(self, user: uuid.UUID) -> str:
        return self.signer.token(user, f"{user.hex[:8]}@example.com")


@contextlib.contextmanager
def dev_stack(
    url: str, sim_config: Any = None, *, plisio: bool = False, **env: str
) -> Iterator[DevStack]:
    """The dev server (every HTTP function, real HTTP) in this process on `url`'s database,
    with moto S3 and its event pump, the Seedance simulator when `sim_config` is given and
    the Plisio simulator when `plisio`. `env` adds or overrides settings; the environment is
    restored afterwards."""
    from izgens.auth import reset_verifier
    from izgens.config import reset_settings
    from izgens.db import reset_database
    from izgens.generations import reset_provider
    from izgens.payments import reset_plisio_client
    from izgens.storage import reset_storage
    from izgens_functions.video_stored.handler import handle_event
    from izgens_local.byteplus_sim import SimServer
    from izgens_local.devauth import DevSigner
    from izgens_local.devserver import create_dev_app
    from izgens_local.plisio_sim import SimConfig as PlisioConfig
    from izgens_local.plisio_sim import create_app as plisio_app
    from izgens_local.s3 import start_local_s3
    from izgens_local.servers import ServerThread

    def refresh() -> None:
        reset_settings()
        reset_verifier()
        reset_database()
        reset_storage()
        reset_provider()
        reset_plisio_client()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    s3 = start_local_s3(0, bucket="izgens-bench", queue_name="izgens-bench-events")
    sim = SimServer(sim_config).start() if sim_config is not None else None
    plisio_server = None
    values = {
        **s3.env(),
        "IZGENS_ENV": "test",
        "LOG_LEVEL": "WARNING",
        "DATABASE_URL": url,
        "DB_POOL_SIZE": "16",
        "SUPABASE_URL": base,
        "CALLBACK_SIGNING_KEY": "bench-callback-signing-key-0123456789",
        "PUBLIC_BASE_URLS": f"status={base}/status,plisio_webhook={base}/plisio_webhook",
        "PLISIO_SECRET_KEY": PLISIO_SECRET,
        "FRONTEND_URL": base,
    }
    if plisio:
        plisio_server = ServerThread(
            plisio_app(PlisioConfig(secret_key=PLISIO_SECRET)), name="bench-plisio"
        ).start()
        values["PLISIO_BASE_URL"] = f"{plisio_server.url}/api/v1"
    if sim is not None:
        values |= {
            "BYTEPLUS_BASE_URL": sim.api_url,
            "BYTEPLUS_API_KEY": sim_config.api_key,
            "BYTEPLUS_VIDEO_HOSTS": sim.url.removeprefix("http://"),
        }
    values |= env
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    refresh()
    pump = s3.pump(handle_event)
    signer = DevSigner(f"{base}/auth/v1")
    server = ServerThread(create_dev_app(signer), port, name="bench-dev-server").start()
    try:
        yield DevStack(base=base, signer=signer, sim=sim, s3=s3)
    finally:
        server.stop()
        pump.stop()
        if sim is not None:
            sim.stop()
        if plisio_server is not None:
            plisio_server.stop()
        s3.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        refresh()
