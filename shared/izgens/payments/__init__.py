"""Buying credits with Plisio: packs, checkout, purchases, callbacks and reconciliation.

`models` (what the routes answer), `purchases` (the Plisio client, packs, purchases and
checkout), `events` (verified callbacks and reconciliation, one SQL function for both).

Importing this package costs no httpx: the Plisio client is imported when a checkout or a
reconciliation first needs it, so the account and webhook functions start fast.

The money rules live in SQL (`infra/supabase/migrations/..._payments.sql`); this package
puts Plisio and Postgres together:

* `start_checkout`: one SQL call admits the purchase (gates, rate limit, Idempotency-Key),
  then Plisio makes the invoice (`order_number` = purchase id, `return_existing`, so a
  retried click gets the same invoice back), then one SQL call records it.
* `handle_callback`: `verify_hash` is checked before anything else touches the body; a
  verified callback is then exactly one SQL call (`izgens.record_payment_event`), which
  stores it, moves the purchase forward and credits the pack at most once.
* `reconcile_pending_purchases`: Plisio may never retry a lost callback, so purchases
  still pending after a while are read back from Plisio's operations API and settled
  through the very same SQL function.
"""

from __future__ import annotations

from izgens.payments.events import handle_callback, operation_payload, reconcile_pending_purchases
from izgens.payments.models import (
    CallbackReport,
    Checkout,
    Pack,
    Purchase,
    PurchaseDetails,
    ReconcileReport,
)
from izgens.payments.purchases import (
    INVOICE_EXPIRE_MIN,
    from_settings,
    get_plisio_client,
    get_purchase_details,
    list_packs,
    list_purchases,
    reset_plisio_client,
    start_checkout,
)

__all__ = [
    "INVOICE_EXPIRE_MIN",
    "CallbackReport",
    "Checkout",
    "Pack",
    "Purchase",
    "PurchaseDetails",
    "ReconcileReport",
    "from_settings",
    "get_plisio_client",
    "get_purchase_details",
    "handle_callback",
    "list_packs",
    "list_purchases",
    "operation_payload",
    "reconcile_pending_purchases",
    "reset_plisio_client",
    "start_checkout",
]
