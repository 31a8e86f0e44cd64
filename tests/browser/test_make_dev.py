"""`make dev` as a newcomer runs it: started by the test on free ports, every part answers,
one generation completes and one purchase credits; Ctrl-C (SIGINT to its process group)
stops every process it started and frees every port; a second start keeps the data."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import psycopg

from izgens.migrations import migrations_dir
from tests.browser.devstack import BYTEPLUS_KEY, PLISIO_SECRET, DevStack, alive, port_is_free
from tests.support.waiting import wait_for

FUNCTIONS = {"generate", "status", "account", "plisio_webhook", "privacy_export"}


class Client:
    def __init__(self, stack: DevStack) -> None:
        self.http = httpx.Client(base_url=stack.base, timeout=30)
        self.token = ""

    def close(self) -> None:
        self.http.close()

    def sign_in(self, email: str) -> dict[str, Any]:
        r = self.http.post("/dev/users", json={"email": email})
        assert r.status_code in (200, 201), r.text
        self.token = r.json()["access_token"]
        return r.json()

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.call(method, path, **kw)
        assert r.status_code == status, f"{method} {path} -> {r.status_code} {r.text}"
        return r.json() if r.content else None


def check_every_part(stack: DevStack) -> None:
    health = httpx.get(f"{stack.base}/health", timeout=10).json()
    assert health["ok"] is True and set(health["functions"]) == FUNCTIONS
    for name in FUNCTIONS:
        doc = httpx.get(f"{stack.base}/{name}/openapi.json", timeout=10)
        assert doc.status_code == 200 and doc.json()["paths"], name
    console = httpx.get(f"{stack.base}/", timeout=10)
    assert console.status_code == 200 and "izgens dev console" in console.text
    assert httpx.get(f"{stack.base}/static/console.js", timeout=10).status_code == 200
    jwks = httpx.get(f"{stack.base}/auth/v1/.well-known/jwks.json", timeout=10).json()
    assert jwks["keys"][0]["alg"] == "ES256"

    tasks = f"{stack.byteplus}/contents/generations/tasks"
    auth = {"Authorization": f"Bearer {BYTEPLUS_KEY}"}
    assert httpx.get(tasks, headers=auth, timeout=10).status_code == 200
    wrong = {"Authorization": "Bearer not-the-key"}
    assert httpx.get(tasks, headers=wrong, timeout=10).status_code == 401

    ops = httpx.get(f"{stack.plisio}/operations", params={"api_key": PLISIO_SECRET}, timeout=10)
    assert ops.status_code == 200 and ops.json()["status"] == "success"

    import boto3

    s3 = boto3.session.Session(
        aws_access_key_id="dev", aws_secret_access_key="dev-s3-secret", region_name="us-east-1"
    ).client("s3", endpoint_url=stack.s3)
    s3.head_bucket(Bucket="izgens-dev")

    with psycopg.connect(host=str(stack.pgdata), user="postgres", dbname="postgres") as conn:
        applied = conn.execute("select count(*) from supabase_migrations.schema_migrations")
        assert applied.fetchone()[0] == len(list(migrations_dir().glob("*.sql")))

    wait_for(lambda: '"cleanup run"' in stack.log(), 15, "the scheduler ran cleanup", every=0.2)

    banner = stack.log()
    for part in (stack.base, stack.byteplus, stack.plisio, stack.s3, str(stack.pgdata)):
        assert part in banner, f"the banner does not show {part}"
    assert "export TOKEN=ey" in banner and "Idempotency-Key" in banner


def generate_one(client: Client) -> dict[str, Any]:
    gen = client.ok(
        "POST",
        "/generate/generations",
        202,
        json={"prompt": "a paper boat on a river"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )

    def finished() -> dict[str, Any] | None:
        now = client.ok("GET", f"/status/generations/{gen['id']}")
        return now if now["status"] in ("completed", "failed", "canceled") else None

    done = wait_for(finished, 30, "the generation finished", every=0.2)
    assert done["status"] == "completed", done
    video = httpx.get(done["video_url"], timeout=30)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    return done


def buy_one(client: Client) -> int:
    before = client.ok("GET", "/account/me")["balance"]
    pack = client.ok("GET", "/account/packs")[0]
    checkout = client.ok(
        "POST",
        "/account/checkout",
        201,
        json={"pack_id": pack["id"]},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert checkout["invoice_url"]
    paid = client.http.post(
        "/dev/plisio/pay", json={"purchase_id": checkout["purchase_id"], "status": "completed"}
    )
    assert paid.status_code == 200, paid.text
    after = client.ok("GET", "/account/me")["balance"]
    assert after == before + pack["credits"]
    purchases = client.ok("GET", "/account/purchases")["items"]
    assert [p["status"] for p in purchases if p["id"] == checkout["purchase_id"]] == ["completed"]
    return after


def stop_and_check_nothing_is_left(stack: DevStack) -> None:
    processes = stack.processes()
    assert len(processes) >= 3, "expected make, izgens and Postgres at least"
    assert stack.interrupt(30) is not None, "make dev did not stop within 30 s of Ctrl-C"
    wait_for(lambda: not alive(processes), 10, "every process gone", every=0.2)
    busy = [port for port in stack.ports.values() if not port_is_free(port)]
    assert busy == [], f"ports still in use after Ctrl-C: {busy}"
    log = stack.log()
    assert "Traceback" not in log, log[-3000:]
    assert "izgens dev: stopped" in log


def test_make_dev_serves_everything_and_ctrl_c_leaves_nothing(fresh_stack: DevStack) -> None:
    stack = fresh_stack.start()
    check_every_part(stack)

    client = Client(stack)
    email = f"stack-{uuid.uuid4().hex[:8]}@example.com"
    user = client.sign_in(email)
    client.ok("POST", "/account/me/age-confirmation", json={"over_18": True})
    balance = buy_one(client)
    done = generate_one(client)
    balance -= done["cost"]
    client.close()
    stop_and_check_nothing_is_left(stack)

    # a second start reuses the data: same user, its generation and balance
    stack.start()
    again = Client(stack)
    assert again.sign_in(email)["user_id"] == user["user_id"]
    history = again.ok("GET", "/status/generations")["items"]
    assert [g["id"] for g in history] == [done["id"]]
    assert again.ok("GET", "/account/me")["balance"] == balance
    again.close()
    stop_and_check_nothing_is_left(stack)
