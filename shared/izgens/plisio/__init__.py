"""Plisio, the crypto payment processor (reference/plisio.md): its invoices and operations as we read them (`models`) and the typed client of the three calls the credits shop makes (`client`). Callback signatures are `izgens.plisio_signature`, apart, so the webhook imports no HTTP client."""

from __future__ import annotations

from izgens.plisio.client import PlisioClient
from izgens.plisio.models import (
    CLOSED_UNPAID_STATUSES,
    KNOWN_STATUSES,
    OPEN_STATUSES,
    PAID_STATUSES,
    Invoice,
    Operation,
    OperationParams,
    PaymentOutcome,
    PlisioRejected,
    PlisioStatus,
    payment_outcome,
)
from izgens.plisio_signature import InvalidSignature, sign_callback, verify_callback

__all__ = [
    "CLOSED_UNPAID_STATUSES",
    "InvalidSignature",
    "Invoice",
    "KNOWN_STATUSES",
    "OPEN_STATUSES",
    "Operation",
    "OperationParams",
    "PAID_STATUSES",
    "PaymentOutcome",
    "PlisioClient",
    "PlisioRejected",
    "PlisioStatus",
    "payment_outcome",
    "sign_callback",
    "verify_callback",
]
