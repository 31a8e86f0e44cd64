"""What the payment routes and jobs answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel


class Pack(BaseModel):
    """A credit pack as the shop lists it; `price` is a decimal string in JSON."""

    id: str
    credits: int
    price: Decimal
    currency: str


class Checkout(BaseModel):
    """What `POST /checkout` answers: where to send the buyer."""

    purchase_id: uuid.UUID
    invoice_url: str | None
    status: str


class Purchase(BaseModel):
    """One purchase as its buyer sees it."""

    id: uuid.UUID
    pack_id: str
    status: str
    credits: int
    amount: Decimal
    currency: str
    invoice_url: str | None = None
    created_at: datetime
    credited_at: datetime | None = None


class PurchaseDetails(BaseModel):
    """Everything support needs about one purchase: the row and every event, raw."""

    purchase: dict[str, Any]
    events: list[dict[str, Any]]


class CallbackReport(BaseModel):
    """`izgens.record_payment_event`'s answer."""

    event_id: int
    duplicate: bool
    purchase_id: uuid.UUID | None
    status: str | None
    credited: bool
    flagged: str | None


class ReconcileReport(BaseModel):
    """Counts of one reconciliation run (the cleanup job logs them)."""

    checked: int = 0  # purchases looked at
    events: int = 0  # new events recorded
    duplicates: int = 0  # operations already recorded in that very state
    credited: int = 0
    flagged: int = 0
    missing: int = 0  # purchases Plisio has no invoice for (yet)
    expired: int = 0  # of those, never invoiced and past the limit: expired
    errors: int = 0  # Plisio unavailable or refusing: tried again next run
