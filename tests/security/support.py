"""Shared by the hardening tests (tests/security, tests/fuzz): the whole system wired up
(moto S3, the Seedance and Plisio simulators, the dev server for the JWKS and callbacks),
a real adult user with credits, and the checks every response must pass.

The conftests of those folders import the fixtures from here.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from izgens.config import Settings, reset_settings
from izgens.db import Database
from izgens.payments import reset_plisio_client
from izgens_local.byteplus_sim import SimConfig, SimServer
from izgens_local.devserver import HTTP_FUNCTIONS, load_function
from izgens_local.s3 import LocalS3
from tests.conftest import DevServer
from tests.payments.support import SECRET as PLISIO_SECRET
from tests.payments.support import plisio_sim
from tests.support.rows import row_counts
from tests.support.users import make_user
from tests.support.waiting import wait_for

__all__ = [
    "FUNCTIONS",
    "Operation",
    "PLISIO_SECRET",
    "RATE_LIMITS",
    "SECRETS",
    "SECURITY_HEADERS",
    "Stack",
    "assert_security_headers",
    "operations",
    "plisio_sim",
    "security_sim",
    "stack",
]

FUNCTIONS = HTTP_FUNCTIONS

SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}

# every rate limit's setting (a new limit included), so a test can move them out of its way
RATE_LIMITS = tuple(
    name.upper()
    for name in Settings.model_fields
    if name.startswith("rate_") and name != "rate_window_seconds"
)

# distinctive values, so a leak is easy to find anywhere
SECRETS = {
    "SUPABASE_SERVICE_KEY": "sec-supabase-service-key-7c1d-NEVER-LOG-ME",
    "BYTEPLUS_API_KEY": "sec-byteplus-key-2b9e-NEVER-LOG-ME",
    "CALLBACK_SIGNING_KEY": "sec-callback-signing-key-4a8f-NEVER-LOG-ME",
    "PLISIO_SECRET_KEY": PLISIO_SECRET,
    "SUPABASE_JWT_SECRET": "sec-legacy-jwt-secret-9d3a-NEVER-LOG-ME-0123456789",
}


@dataclass(frozen=True)
class Operation:
    function: str
    method: str
    path: str  # as the function serves it, e.g. /generations/{generation_id}
    operation: dict[str, Any]

    @property
    def secured(self) -> bool:
        return bool(self.operation.get("security"))

    @property
    def path_params(self) -> list[str]:
        return [p["name"] for p in self.operation.get("parameters", []) if p["in"] == "path"]

    def url(self, **values: str) -> str:
        """The dev server's URL for this route, path parameters filled in."""
        path = self.path
        for name in self.path_params:
            path = path.replace("{" + name + "}", values.get(name, str(uuid.uuid4())))
        return f"/{self.function}{path}"

    @property
    def id(self) -> str:
        return f"{self.function}:{self.method} {self.path}"


def operations() -> list[Operation]:
    """Every route of every HTTP function, from the functions' own OpenAPI documents, so a
    new route is covered by every test that enumerates them."""
    found = []
    for name in FUNCTIONS:
        document = load_function(name).app.openapi()
        for path, item in document["paths"].items():
            for method, operation in item.items():
                found.append(Operation(name, method.upper(), path, operation))
    return found


@dataclass
class Stack:
    dev: DevServer
    db: Database
    api: httpx.Client
    env: dict[str, str]
    user: uuid.UUID
    token: str
    sim: SimServer

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def new_user(self, credits: int = 100_000, *, adult: bool = True) -> tuple[uuid.UUID, str]:
        user = make_user(self.db, credits=credits, adult=adult)
        return user, self.dev.token(user)

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
        return wait_for(predicate, timeout)

    def completed_generation(self, auth: dict[str, str]) -> str:
        """A generation of the bearer of `auth`, settled: the provider's callbacks move
        nothing any more."""
        made = self.api.post(
            "/generate/generations",
            json={"prompt": "a lighthouse at dusk"},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 202, made.text
        generation = made.json()["id"]
        self.wait_for(
            lambda: self.db.one(
                "select 1 as done from public.generations where id = %s and status = 'completed'",
                (generation,),
            )
        )
        return generation

    def running_generation(self) -> dict[str, Any]:
        """The row of a generation of the stack's user that the provider works on for a
        minute, its own callbacks dropped (they would move it while the test looks)."""
        made = self.api.post(
            "/generate/generations",
            json={"prompt": "a slow river [sim:delay=60]"},
            headers={**self.auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert made.status_code == 202, made.text
        row = self.wait_for(
            lambda: self.db.one(
                "select * from public.generations where id = %s and provider_task_id is not null",
                (made.json()["id"],),
            )
        )
        engine = self.sim.engine
        with engine._lock:
            engine.tasks[row["provider_task_id"]].callback_url = None
        self.wait_for(lambda: not engine._draining)
        return row

    def counts(self) -> dict[str, int]:
        """Rows a refused request must not write (rate-limit buckets included)."""
        tables = (
            "generations",
            "credit_ledger",
            "reference_uploads",
            "purchases",
            "payment_events",
            "data_exports",
            "deletion_requests",
            "rate_limits",
            "profiles",
        )
        return row_counts(self.db, **{table: f"public.{table}" for table in tables})


@pytest.fixture(scope="session")
def security_sim() -> Iterator[SimServer]:
    """A Seedance simulator that accepts exactly our distinctive key."""
    config = SimConfig(api_key=SECRETS["BYTEPLUS_API_KEY"], delay=0.2, callback_retry_delay=0.1)
    with SimServer(config) as sim:
        yield sim


@pytest.fixture
def stack(
    local_s3: LocalS3,
    security_sim: SimServer,
    plisio_sim: str,
    dev_server: DevServer,
    db: Database,
    api: httpx.Client,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """Everything configured, with distinctive secrets, and one adult user with credits."""
    env = {
        **local_s3.env(),
        **SECRETS,
        "BYTEPLUS_BASE_URL": security_sim.api_url,
        "BYTEPLUS_VIDEO_HOSTS": security_sim.url.removeprefix("http://"),
        "PLISIO_BASE_URL": f"{plisio_sim}/api/v1",
        "PUBLIC_BASE_URLS": (
            f"status={dev_server.base}/status,plisio_webhook={dev_server.base}/plisio_webhook"
        ),
        "FRONTEND_URL": "https://app.izgens.test",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    _refresh()
    security_sim.engine.reset()
    user = make_user(db, credits=1_000_000)
    try:
        yield Stack(dev_server, db, api, env, user, dev_server.token(user), security_sim)
    finally:
        security_sim.engine.reset()
        _wait_for_callbacks(security_sim)
        _refresh()


def _refresh() -> None:
    """Forget everything built from settings (clients, the verifier's HS256 secret)."""
    from izgens.auth import reset_verifier
    from izgens.generations import reset_provider
    from izgens.storage import reset_storage

    reset_settings()
    reset_verifier()
    reset_plisio_client()
    reset_provider()
    reset_storage()


def _wait_for_callbacks(sim: SimServer, timeout: float = 10.0) -> None:
    """The simulator's callbacks into the dev server must end before this test's database."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sim.engine._lock:
            if not sim.engine._draining:
                return
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# Response checks


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, response.status_code, response.url)
    assert response.headers.get("strict-transport-security", "").startswith("max-age=")
    assert response.headers.get("x-request-id")
