"""`make dev`: the whole system on one machine.

One Python process runs the dev server, the simulators, the S3 emulator, the event
pump and the cleanup schedule (`izgens_local.scheduler`) in threads; Postgres is the only
child process, and it is stopped on the way out (`pg_ctl stop`), so Ctrl-C (or SIGTERM)
leaves nothing behind. Every setting already in the environment wins over the dev defaults;
setting a service's base URL swaps its simulator for the real service.

The dev user gets `DEV_USER_CREDITS` credits and a confirmed age on its first start (once:
the grant's ref is fixed), so the banner's curl for a first generation works as printed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from izgens_local.pg import EmbeddedPostgres, start_postgres, state_dir

__all__ = [
    "DevPorts",
    "PortInUse",
    "dev_environment",
    "run_dev",
    "start_database",
]

DEV_USER_ID = uuid.UUID("00000000-0000-4000-8000-00000000d3e0")
DEV_USER_EMAIL = "dev@izgens.local"
DEV_USER_CREDITS = 200  # granted once, on the first start (ref DEV_WELCOME_REF)
DEV_WELCOME_REF = "dev-stack:welcome"


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
            raw = os.environ.get(name, "").strip() or str(default)
            if not raw.isdigit() or not 0 < int(raw) < 65536:
                raise ValueError(f"{name} must be a port number (1-65535), not {raw!r}")
            return int(raw)

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


def start_database() -> EmbeddedPostgres:
    """The dev stack's Postgres (kept between runs), migrated; attaches if already running."""
    from izgens.migrations import apply_migrations

    pg = start_postgres(state_dir() / "pg")
    try:
        apply_migrations(pg.url, bootstrap_auth=True)
    except BaseException:
        pg.stop()  # a server this process started does not outlive a refused migration
        raise
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
    if os.environ.get("BYTEPLUS_BASE_URL"):
        del defaults["BYTEPLUS_VIDEO_HOSTS"]  # the real service: its own video hosts
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
        with _shielded_from_signals():  # a second Ctrl-C must not leave Postgres running
            for stop in reversed(self.stoppers):
                with contextlib.suppress(Exception):
                    stop()
            self.stoppers.clear()
            self.pg.stop()


@contextlib.contextmanager
def _shielded_from_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def running_stack(ports: DevPorts) -> Iterator[Stack]:
    """Start every part except the dev server itself; stop them all on exit."""
    from izgens.config import reset_settings
    from izgens.db import reset_database
    from izgens_local.devauth import DevSigner

    for port, what, var, real in (
        (ports.dev, "dev server", "IZGENS_DEV_PORT", None),
        (ports.byteplus, "Seedance simulator", "IZGENS_BYTEPLUS_SIM_PORT", "BYTEPLUS_BASE_URL"),
        (ports.plisio, "Plisio simulator", "IZGENS_PLISIO_SIM_PORT", "PLISIO_BASE_URL"),
        (ports.s3, "S3 emulator", "IZGENS_S3_PORT", "S3_ENDPOINT_URL"),
    ):
        if not (real and os.environ.get(real)):  # a real service needs no local port
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
    from izgens_local.servers import ServerThread

    config = SimConfig(
        secret_key=os.environ["PLISIO_SECRET_KEY"],
        public_url=f"http://127.0.0.1:{stack.ports.plisio}",
    )
    sim = ServerThread(create_app(config), stack.ports.plisio, name="plisio-sim").start()
    stack.stoppers.append(sim.stop)


def _part(variable: str, simulated: str, label: str) -> str:
    """The URL a part is reached at, and whether it is the simulator or the real service."""
    url = os.environ.get(variable) or simulated
    return f"{url}   ({label})" if url == simulated else f"{url}   (REAL service, {variable})"


def _banner(stack: Stack, token: str, balance: int, cleanup_interval: float) -> str:
    base = stack.base
    ports = stack.ports
    s3 = _part("S3_ENDPOINT_URL", f"http://127.0.0.1:{ports.s3}", "moto S3 emulator")
    bucket = os.environ.get("S3_BUCKET", "")
    byteplus = _part(
        "BYTEPLUS_BASE_URL", f"http://127.0.0.1:{ports.byteplus}/api/v3", "Seedance simulator"
    )
    plisio = _part("PLISIO_BASE_URL", f"http://127.0.0.1:{ports.plisio}/api/v1", "Plisio simulator")
    cleanup = (
        f"every {cleanup_interval:g} s (IZGENS_CLEANUP_INTERVAL; 0 = off)"
        if cleanup_interval > 0
        else "off (IZGENS_CLEANUP_INTERVAL=0); run it with: izgens cleanup --now"
    )
    return f"""
izgens dev stack is up
  console           {base}/
  dev server        {base}   every function under /<name>/..., its OpenAPI at /<name>/openapi.json
  health            {base}/health
  Seedance          {byteplus}
  Plisio            {plisio}
  S3                {s3}, bucket {bucket}
  Postgres          {stack.pg.url}
  cleanup           {cleanup}
  data kept in      {state_dir()}

dev user {DEV_USER_EMAIL} ({DEV_USER_ID}), balance {balance} credits, age confirmed;
its access token (valid 12 h):

  export TOKEN={token}

a first generation (then watch it with the second command):

  curl -s -X POST {base}/generate/generations -H "Authorization: Bearer $TOKEN" \\
    -H "Content-Type: application/json" -H "Idempotency-Key: $(date +%s)" \\
    -d '{{"prompt": "a paper boat drifting down a mountain river"}}'
  curl -s "{base}/status/generations?limit=1" -H "Authorization: Bearer $TOKEN"

Ctrl-C stops everything.
"""


def ensure_dev_user(stack: Stack) -> tuple[str, int]:
    """The dev user, adult, with its welcome credits (granted once); its token and balance."""
    from izgens import accounts, credits
    from izgens.db import get_database

    db = get_database()
    db.execute(
        "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
        (DEV_USER_ID, DEV_USER_EMAIL),
    )
    db.one("select * from izgens.ensure_profile(%s)", (DEV_USER_ID,))
    accounts.confirm_age(db, DEV_USER_ID)
    credits.grant(db, DEV_USER_ID, DEV_USER_CREDITS, DEV_WELCOME_REF, "dev stack welcome")
    balance = accounts.get_account(db, DEV_USER_ID).balance
    return stack.signer.token(DEV_USER_ID, DEV_USER_EMAIL, ttl=12 * 3600), balance


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def start_scheduler(stack: Stack, interval: float) -> None:
    """`cleanup` on a short interval, as EventBridge runs it on AWS (stopped with the stack)."""
    from izgens.export_jobs import stop_worker
    from izgens_local.scheduler import CleanupScheduler

    scheduler = CleanupScheduler(interval, first_delay=min(interval, 1.0)).start()
    stack.stoppers.append(scheduler.stop)
    stack.stoppers.append(stop_worker)  # the exports' worker thread, started on demand


def run_dev() -> int:
    import uvicorn

    from izgens.logs import configure_logging
    from izgens_local.devserver import create_dev_app
    from izgens_local.scheduler import interval_from_env
    from izgens_local.servers import MAX_REQUEST_HEAD

    try:
        ports = DevPorts.from_env()
        cleanup_interval = interval_from_env()
    except ValueError as exc:
        sys.stderr.write(f"izgens dev: {exc}\n")
        return 2
    # until uvicorn installs its own handlers, SIGTERM unwinds like Ctrl-C (Postgres stops)
    previous_sigterm = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with running_stack(ports) as stack:
            configure_logging(os.environ.get("LOG_LEVEL", "INFO"))
            app = create_dev_app(stack.signer)
            token, balance = ensure_dev_user(stack)
            start_scheduler(stack, cleanup_interval)
            config = uvicorn.Config(
                app,
                host="127.0.0.1",
                port=ports.dev,
                log_level="warning",
                lifespan="off",
                h11_max_incomplete_event_size=MAX_REQUEST_HEAD,
            )
            server = uvicorn.Server(config)
            sys.stdout.write(_banner(stack, token, balance, cleanup_interval))
            sys.stdout.flush()
            server.run()  # until Ctrl-C; uvicorn then re-raises the signal it caught
    except PortInUse as exc:
        sys.stderr.write(f"izgens dev: {exc}\n")
        return 2
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    sys.stderr.write("izgens dev: stopped\n")
    return 0
