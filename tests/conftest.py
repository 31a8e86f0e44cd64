"""Shared fixtures: a real Postgres (embedded, or DATABASE_URL), one fresh database per test
cloned from a migrated template, and the dev server over real HTTP.

Every test that touches the database ends with the ledger check: a profile whose balance
is not the sum of its ledger fails the test that caused it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from izgens.auth import reset_verifier
from izgens.config import reset_settings
from izgens.db import Database, reset_database
from izgens.export_jobs import stop_worker
from izgens.migrations import apply_migrations
from tests.support.servers import free_port
from tests.support.users import assert_books_balance

TEST_ENV = {
    "IZGENS_ENV": "test",
    "DB_POOL_SIZE": "40",
    "LOG_LEVEL": "INFO",
    "RATE_GENERATE_USER": "1000",
    "RATE_GENERATE_IP": "1000",
}


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A Postgres server to create test databases on."""
    given = os.environ.get("DATABASE_URL")
    if given:
        yield given
        return
    from izgens_local.pg import reap_orphans, start_postgres

    parent = Path(tempfile.gettempdir())
    reap_orphans(parent, "izgens-test-pg-")
    pgdata = Path(tempfile.mkdtemp(prefix="izgens-test-pg-"))
    pg = start_postgres(pgdata, tune_for_tests=True)
    try:
        yield pg.url
    finally:
        pg.stop()
        shutil.rmtree(pgdata, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> Iterator[str]:
    name = f"izgens_tpl_{uuid.uuid4().hex[:10]}"
    _admin(pg_admin_url, f'create database "{name}"')
    apply_migrations(make_conninfo(pg_admin_url, dbname=name), bootstrap_auth=True)
    try:
        yield name
    finally:
        _admin(pg_admin_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture(scope="session", autouse=True)
def _test_environment() -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in TEST_ENV}
    os.environ.update(TEST_ENV)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def pin_rate_clock(url: str, at: datetime | None = None) -> datetime:
    """Pin the clock rate-limit windows are counted on (`izgens.clock()`) for every new
    session of this database: at `at`, else at this moment. A pinned window never ends
    during the test, wherever the wall clock falls; moving it is how a test sees the next
    window. Sessions opened before keep the old value (reset the pools)."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("select current_database(), coalesce(%s, now())", (at,)).fetchone()
        assert row is not None
        name, pinned = row
        conn.execute(f"alter database \"{name}\" set izgens.clock = '{pinned.isoformat()}'")
    return pinned


@pytest.fixture
def db_url(pg_admin_url: str, template_db: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh migrated database for this test, its rate-limit clock pinned (no window
    boundary can fall inside a test); the process settings point at it."""
    name = f"izgens_t_{uuid.uuid4().hex[:12]}"
    _admin(pg_admin_url, f'create database "{name}" template "{template_db}"')
    url = make_conninfo(pg_admin_url, dbname=name)
    pin_rate_clock(url)
    monkeypatch.setenv("DATABASE_URL", url)
    reset_settings()
    reset_database()
    try:
        yield url
    finally:
        # an export a test requested is built in the background: let that build end (and
        # drop queued ones) before its database and connections go
        stop_worker()
        reset_database()
        reset_settings()
        _admin(pg_admin_url, f'drop database if exists "{name}" with (force)')


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    """A Database on this test's database; the books must balance when the test ends."""
    database = Database(db_url, size=48, name="izgens-tests")
    try:
        yield database
        assert_books_balance(database)
    finally:
        database.close()


@dataclass
class DevServer:
    base: str
    signer: object

    def token(self, user_id: uuid.UUID, email: str | None = None, **kw: object) -> str:
        return self.signer.token(user_id, email, **kw)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def dev_server() -> Iterator[DevServer]:
    """The dev server (every HTTP function mounted) on a free port, over real HTTP."""
    from izgens_local.devauth import DevSigner
    from izgens_local.devserver import create_dev_app
    from izgens_local.servers import ServerThread

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    saved = os.environ.get("SUPABASE_URL")
    os.environ["SUPABASE_URL"] = base
    reset_settings()
    reset_verifier()
    signer = DevSigner(f"{base}/auth/v1")
    server = ServerThread(create_dev_app(signer), port, name="test-dev-server").start()
    try:
        yield DevServer(base=base, signer=signer)
    finally:
        server.stop()
        if saved is None:
            os.environ.pop("SUPABASE_URL", None)
        else:
            os.environ["SUPABASE_URL"] = saved
        reset_verifier()


@pytest.fixture
def api(dev_server: DevServer, db: Database) -> Iterator[httpx.Client]:
    """An HTTP client for the dev server, whose functions use this test's database."""
    with httpx.Client(base_url=dev_server.base, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def local_s3() -> Iterator[object]:
    """moto S3 with the bucket and the videos/ → SQS notification; a pump feeds the events
    to `video_stored` (whatever database the current test points the settings at)."""
    from izgens_functions.video_stored.handler import handle_event
    from izgens_local.s3 import start_local_s3

    s3 = start_local_s3(0, bucket="izgens-test")
    pump = s3.pump(handle_event)
    try:
        yield s3
    finally:
        pump.stop()
        s3.stop()


@pytest.fixture(scope="session")
def byteplus_sim() -> Iterator[object]:
    """The Seedance simulator with short delays and the real account limits."""
    from izgens_local.byteplus_sim import SimConfig, SimServer

    with SimServer(SimConfig(api_key="test-byteplus-key", delay=0.3)) as sim:
        yield sim


@pytest.fixture
def services(
    local_s3: object,
    byteplus_sim: object,
    dev_server: DevServer,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[dict[str, object]]:
    """Settings pointed at moto, the simulator and the dev server for this test."""
    from izgens.generations import reset_provider
    from izgens.storage import reset_storage

    sim_host = byteplus_sim.url.removeprefix("http://")  # type: ignore[attr-defined]
    env = {
        **local_s3.env(),  # type: ignore[attr-defined]
        "BYTEPLUS_BASE_URL": byteplus_sim.api_url,  # type: ignore[attr-defined]
        "BYTEPLUS_API_KEY": "test-byteplus-key",
        "BYTEPLUS_VIDEO_HOSTS": sim_host,
        "CALLBACK_SIGNING_KEY": "test-callback-signing-key-0123456789",
        "PUBLIC_BASE_URLS": f"status={dev_server.base}/status",
        "SUPABASE_SERVICE_KEY": "test-supabase-service-key",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    reset_settings()
    reset_storage()
    reset_provider()
    try:
        yield {"s3": local_s3, "sim": byteplus_sim, "env": env}
    finally:
        reset_storage()
        reset_provider()
