"""Shared by the payment tests (library, account routes, plisio_webhook): a Plisio simulator
per session on a real port, settings pointed at it, an independent callback signer, and
small helpers. The conftests of those folders import the fixtures from here."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest

from izgens.config import reset_settings
from izgens.db import Database
from izgens.payments import reset_plisio_client
from tests.conftest import DevServer

__all__ = [
    "FRONTEND",
    "SECRET",
    "PlisioEnv",
    "callback_body",
    "events",
    "new_purchase",
    "plisio_env",
    "plisio_sim",
    "purchase",
    "sign",
]

# distinctive, so a leak is easy to find in logs, errors and stored rows
SECRET = "plisio-test-secret-5e1f-NEVER-LOG-ME"
FRONTEND = "https://app.izgens.test"


def sign(fields: dict[str, Any], secret: str = SECRET) -> str:
    """verify_hash as the reference (§4.1) defines it, written here independently of
    izgens.plisio: HMAC-SHA1 over compact, key-sorted JSON, slashes and UTF-8 raw (text
    UTF-8 cannot encode, a lone surrogate, as the code units Plisio's signer would see)."""
    message = json.dumps(
        {k: fields[k] for k in sorted(fields) if k != "verify_hash"},
        separators=(",", ":"),
        ensure_ascii=False,
    )
    payload = message.encode("utf-8", "surrogatepass")
    return hmac.new(secret.encode(), payload, hashlib.sha1).hexdigest()


def callback_body(
    order_number: str,
    status: str,
    *,
    paid: str | None = None,
    due: str = "5.000000",
    secret: str = SECRET,
    txn_id: str = "65f0c0ffee000000000000aa",
    **overrides: str,
) -> bytes:
    """The bytes Plisio posts for a JSON callback (fields sorted, verify_hash last).

    The coin is USDT_TRX at rate 1, so `due` is the 5.00 USD starter pack; `paid`
    defaults to what the status implies.
    """
    if paid is None:
        paid = {"completed": due, "mismatch": str(Decimal(due) + 1)}.get(status, "0.000000")
    fields = {
        "txn_id": txn_id,
        "ipn_type": "invoice",
        "merchant": "izgens test shop",
        "merchant_id": "65f0aaaaaaaaaaaaaaaa0001",
        "order_number": order_number,
        "order_name": "500 credits",
        "status": status,
        "amount": paid,
        "pending_amount": str(Decimal(due) - Decimal(paid)),
        "currency": "USDT_TRX",
        "psys_cid": "USDT_TRX",
        "source_currency": "USD",
        "source_amount": "5.00",
        "source_rate": "1.000000",
        "invoice_commission": "0.000000",
        "invoice_sum": due,
        "invoice_total_sum": due,
        "confirmations": "20",
        "comment": f"Invoice details: https://plisio.net/account/transactions/{txn_id}",
    }
    fields.update(overrides)
    ordered = dict(sorted(fields.items()))
    ordered["verify_hash"] = sign(ordered, secret)
    return json.dumps(ordered, separators=(",", ":"), ensure_ascii=False).encode()


def new_purchase(
    db: Database,
    user: uuid.UUID,
    pack: str = "starter",
    key: str | None = None,
    *,
    per_minute: int = 1000,
) -> uuid.UUID:
    """A pending purchase straight from SQL (no invoice): for the callback rules. The
    user may start `per_minute` checkouts a minute."""
    row = db.one(
        "select id from izgens.start_checkout(%s, %s, %s, %s, %s, %s, null)",
        (user, pack, key or uuid.uuid4().hex, "203.0.113.7", per_minute, 60),
        idempotent=False,
    )
    assert row is not None
    return row["id"]


def purchase(db: Database, purchase_id: uuid.UUID | str) -> dict[str, Any]:
    row = db.one("select * from public.purchases where id = %s", (purchase_id,))
    assert row is not None
    return row


def events(db: Database) -> list[dict[str, Any]]:
    return db.all("select * from public.payment_events order by id")


@dataclass
class PlisioEnv:
    sim_url: str
    api_url: str
    sim: httpx.Client  # the simulator's driver routes (/sim/pay, /sim/invoices)
    webhook_url: str  # where callbacks land: the dev server's plisio_webhook

    def invoices(self, order_number: uuid.UUID | str) -> list[dict[str, Any]]:
        answer = self.sim.get("/sim/invoices", params={"order_number": str(order_number)})
        answer.raise_for_status()
        return answer.json()["invoices"]

    def pay(self, order_number: uuid.UUID | str, status: str, **extra: Any) -> dict[str, Any]:
        answer = self.sim.post(
            "/sim/pay", json={"order_number": str(order_number), "status": status, **extra}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()


@pytest.fixture(scope="session")
def plisio_sim() -> Iterator[str]:
    """One Plisio simulator for the session, over real HTTP on a free port."""
    from izgens_local.plisio_sim import SimConfig, create_app
    from izgens_local.servers import ServerThread

    with ServerThread(create_app(SimConfig(secret_key=SECRET)), name="test-plisio-sim") as server:
        yield server.url


@pytest.fixture
def plisio_env(
    plisio_sim: str, dev_server: DevServer, db: Database, monkeypatch: pytest.MonkeyPatch
) -> Iterator[PlisioEnv]:
    """Settings pointed at the simulator; its callbacks reach the dev server's
    /plisio_webhook/plisio/callback?json=true. The simulator starts each test empty."""
    webhook = f"{dev_server.base}/plisio_webhook"
    monkeypatch.setenv("PLISIO_BASE_URL", f"{plisio_sim}/api/v1")
    monkeypatch.setenv("PLISIO_SECRET_KEY", SECRET)
    monkeypatch.setenv("PUBLIC_BASE_URLS", f"plisio_webhook={webhook}")
    monkeypatch.setenv("FRONTEND_URL", FRONTEND)
    monkeypatch.setenv("RATE_CHECKOUT_USER", "1000")
    reset_settings()
    reset_plisio_client()
    with httpx.Client(base_url=plisio_sim, timeout=30) as sim:
        sim.post("/sim/reset").raise_for_status()
        try:
            yield PlisioEnv(
                sim_url=plisio_sim, api_url=f"{plisio_sim}/api/v1", sim=sim, webhook_url=webhook
            )
        finally:
            reset_plisio_client()
            reset_settings()
