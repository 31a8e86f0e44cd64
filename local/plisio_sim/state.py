"""What the simulator pretends to be, and the invoices it holds; amounts as Plisio writes them."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

CRYPTO = Decimal("0.000001")
FIAT = Decimal("0.01")
PAY_STATUSES = ("completed", "mismatch", "expired", "cancelled", "error")
OPEN = ("new", "pending")


@dataclass(frozen=True)
class SimConfig:
    """What the simulator pretends to be. `public_url` overrides the URL browsers are sent to
    (default: whatever host the API request came in on)."""

    secret_key: str = "dev-plisio-secret"
    public_url: str | None = None
    merchant: str = "izgens dev shop"
    merchant_id: str = "5f0d1e2a3b4c5d6e7f809a1b"
    coin: str = "USDT_TRX"
    fiat_currencies: frozenset[str] = frozenset({"USD", "EUR", "GBP"})
    source_rate: Decimal = Decimal("1")
    default_expire_min: int = 1440
    overpay: Decimal = Decimal("1")  # a `mismatch` pays this much more than due by default
    underpay_ratio: Decimal = Decimal("0.5")  # an `expired` pays this share by default
    confirmations: int = 20
    callback_timeout: float = 10.0
    notify_on_create: bool = False  # real Plisio also calls back with `new` on creation


@dataclass
class Invoice:
    txn_id: str
    order_number: str
    order_name: str
    source_currency: str
    source_amount: Decimal
    due: Decimal
    currency: str
    invoice_url: str
    comment_base: str
    created_at: int
    expire_at: int
    params: dict[str, str]
    status: str = "new"
    paid: Decimal = Decimal("0")
    busy: bool = False
    callbacks: list[dict[str, Any]] = field(default_factory=list)


class State:
    """Invoices by txn id; every read and write holds the lock (tests poke from threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.invoices: dict[str, Invoice] = {}

    def by_order(self, order_number: str) -> Invoice | None:
        for invoice in self.invoices.values():
            if invoice.order_number == order_number:
                return invoice
        return None


def crypto(value: Decimal) -> str:
    return str(value.quantize(CRYPTO))


def fiat(value: Decimal) -> str:
    """At least two decimals, like Plisio's `"15.00"`; finer amounts keep their digits."""
    return str(value.quantize(FIAT)) if value == value.quantize(FIAT) else format(value, "f")
