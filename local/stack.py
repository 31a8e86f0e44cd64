"""`make dev`: the whole system on one machine.

One Python process runs the dev server, the simulators, the S3 emulator and the event
pump in threads; Postgres is the only child process, and it is stopped on the way out, so
Ctrl-C leaves nothing behind. Every setting already in the environment wins over the dev
defaults; setting a service's base URL swaps its simulator for the real service.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from izgens_local.pg import EmbeddedPostgres, start_postgres, state_dir

__all__ = [
    "DevPorts",
    "PortInUse",
    "ThreadedServer",
    "dev_environment",
    "run_dev",
    "start_database",
]

DEV_USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
DEV_USER_EMAIL = "dev@izgens.local"


class PortInUse(SystemExit):
    pass


@dataclass(frozen=True)
class DevPorts:
    dev: int
    byteplus: int
    plisio: int
    s3: int

    @classmethod
    def from_env(cls) -> DevPorts:
        def port(name: str, default: int) -> int:
            return int(os.environ.get(name, default))

        return cls(
            dev=port("IZGENS_DEV_PORT", 8000),
            byteplus=port("IZGENS_BYTEPLUS_SIM_PORT", 8001),
            plisio=port("IZGENS_PLISIO_SIM_PORT", 8002),
            s3=port("IZGENS_S3_PORT", 8003),
        )


def ensure_free(port: int, what: str, variable: str) -> None:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise PortInUse(
                f"port {port} ({what}) is already in use on 127.0.0.1: stop what holds it, or "
                f"choose another port with {variable}=<port>"
            ) from None


class ThreadedServer:
    """A uvicorn server on a background thread (signal handling stays with the main thread)."""

    def __init__(self, app: Any, port: int, *, name: str) -> None:
        import uvicorn

        config = uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self.server = uvicorn.Server(config)
        self.name = name
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    def start(self, timeout: float = 15.0) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_database() -> EmbeddedPostgres:
    """The dev stack's Postgres (kept between runs), migrated; attaches if already running."""
    from izgens.migrations import apply_migrations

    pg = start_postgres(state_dir() / "pg")
    apply_migrations(pg.url, bootstrap_auth=True)
    return pg


def dev_environment(ports: DevPorts, database_url: str) -> dict[str, str]:
    """Dev values for every setting not already in the environment."""
    base = f"http://127.0.0.1:{ports.dev}"
    defaults = {
        "IZGENS_ENV": "dev",
        "DATABASE_URL": database_url,
        "DB_POOL_SIZE": "16",
        "SUPABASE_URL": base,
        "S3_BUCKET": "izgens-dev",
        "S3_ENDPOINT_URL": f"http://127.0.0.1:{ports.s3}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "dev",
        "AWS_SECRET_ACCESS_KEY": "dev-s3-secret",
        "BYTEPLUS_API_KEY": "dev-byteplus-key",
        "BYTEPLUS_BASE_URL": f"http://127.0.0.1:{ports.byteplus}/api/v3",
        "BYTEPLUS_VIDEO_HOSTS": f"127.0.0.1:{ports.byteplus}",
        "PLISIO_SECRET_KEY": "dev-plisio-secret",
        "PLISIO_BASE_URL": f"http://127.0.0.1:{ports.plisio}/api/v1",
        "CALLBACK_SIGNING_KEY": "dev-callback-signing-key-000000000000",
        "SUPABASE_SERVICE_KEY": "dev-supabase-service-key",
        "PUBLIC_BASE_URLS": f"status={base}/status,plisio_webhook={base}/plisio_webhook",
        "FRONTEND_URL": base,
    }
    return {k: v for k, v in defaults.items() if not os.environ.get(k)}


@dataclass
class Stack:
    ports: DevPorts
    pg: EmbeddedPostgres
    signer: Any
    stoppers: list[Callable[[], None]] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports.dev}"

    def stop(self) -> None:
        for stop in reversed(self.stoppers):
            with contextlib.suppress(Exception):
                stop()
        self.stoppers.clear()
        self.pg.stop()


@contextlib.contextmanager
def running_stack(ports: DevPorts) -> Iterator[Stack]:
    """Start every part except the dev server itself; stop them all on exit."""
    from izgens.config import reset_settings
    from izgens.db import reset_database
    from izgens_local.devauth import DevSigner

    for port, what, var in (
        (ports.dev, "dev server", "IZGENS_DEV_PORT"),
        (ports.byteplus, "Seedance simulator", "IZGENS_BYTEPLUS_SIM_PORT"),
        (ports.plisio, "Plisio simulator", "IZGENS_PLISIO_SIM_PORT"),
        (ports.s3, "S3 emulator", "IZGENS_S3_PORT"),
    ):
        ensure_free(port, what, var)
    pg = start_database()
    stack = Stack(ports=ports, pg=pg, signer=None)
    try:
        applied = dev_environment(ports, pg.url)
        os.environ.update(applied)
        reset_settings()
        reset_database()
        stack.signer = DevSigner(f"{stack.base}/auth/v1", state_dir() / "dev-jwt-key.pem")
        # a base URL set by the user means the real service: no simulator for it
        if "S3_ENDPOINT_URL" in applied:
            start_s3(stack)
        if "BYTEPLUS_BASE_URL" in applied:
            start_byteplus_sim(stack)
        if "PLISIO_BASE_URL" in applied:
            start_plisio_sim(stack)
        yield stack
    finally:
        stack.stop()


def start_s3(stack: Stack) -> None:
    """moto S3 with the bucket; its ObjectCreated events for videos/ go to SQS, and a pump
    hands them to `video_stored` (moto cannot invoke Lambda without Docker)."""
    from izgens.config import get_settings
    from izgens_functions.video_stored.handler import handle_event
    from izgens_local.s3 import start_local_s3

    s3 = start_local_s3(stack.ports.s3, bucket=get_settings().s3_bucket)
    stack.stoppers.append(s3.stop)
    pump = s3.pump(handle_event)
    stack.stoppers.append(pump.stop)


def start_byteplus_sim(stack: Stack) -> None:
    from izgens_local.byteplus_sim import SimConfig, SimServer

    config = SimConfig.from_env()
    sim = SimServer(config, port=stack.ports.byteplus).start()
    stack.stoppers.append(sim.stop)


def start_plisio_sim(stack: Stack) -> None:
    """The Plisio simulator on its port, accepting exactly PLISIO_SECRET_KEY; invoice URLs
    point at it, so a browser can pay there."""
    from izgens_local.plisio_sim import SimConfig, create_app

    config = SimConfig(
        secret_key=os.environ["PLISIO_SECRET_KEY"],
        public_url=f"http://127.0.0.1:{stack.ports.plisio}",
    )
    sim = ThreadedServer(create_app(config), stack.ports.plisio, name="plisio-sim").start()
    stack.stoppers.append(sim.stop)


def _banner(stack: Stack, token: str) -> str:
    base = stack.base
    return f"""
izgens dev stack is up
  dev server        {base}   (functions under /<name>/..., OpenAPI at /<name>/openapi.json)
  Postgres          {stack.pg.url}
  data kept in      {state_dir()}

dev user {DEV_USER_EMAIL} ({DEV_USER_ID}); its access token (valid 12 h):
  export TOKEN={token}

  curl -s {base}/account/me -H "Authorization: Bearer $TOKEN"

Ctrl-C stops everything.
"""


def ensure_dev_user(stack: Stack) -> str:
    from izgens.db import get_database

    db = get_database()
    db.execute(
        "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
        (DEV_USER_ID, DEV_USER_EMAIL),
    )
    db.one("select * from izgens.ensure_profile(%s)", (DEV_USER_ID,))
    return stack.signer.token(DEV_USER_ID, DEV_USER_EMAIL, ttl=12 * 3600)


def run_dev() -> int:
    import uvicorn

    from izgens.logs import configure_logging
    from izgens_local.devserver import create_dev_app

    ports = DevPorts.from_env()
    try:
        with running_stack(ports) as stack:
            configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
            app = create_dev_app(stack.signer)
            token = ensure_dev_user(stack)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=ports.dev, log_level="warning", lifespan="off"
            )
            server = uvicorn.Server(config)
            sys.stdout.write(_banner(stack, token))
            sys.stdout.flush()
            server.run()
    except PortInUse as exc:
        sys.stderr.write(f"izgens dev: {exc}\n")
        return 2
    return 0
