"""The Plisio client, packs, purchases, and checkout: a purchase admitted by SQL, its invoice
made by Plisio, recorded by SQL."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from izgens import errors
from izgens.clients import Shared
from izgens.logs import log_event
from izgens.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor
from izgens.payments.models import Checkout, Pack, Purchase, PurchaseDetails

if TYPE_CHECKING:
    from izgens.config import Settings
    from izgens.db import Database
    from izgens.plisio import PlisioClient

logger = logging.getLogger("izgens.payments")


# Long enough to pay with a slow coin, short enough that a stale price does not linger.
INVOICE_EXPIRE_MIN = 180
CALLBACK_PATH = "/plisio/callback?json=true"

PURCHASE_COLUMNS = (
    "id, pack_id, status, credits, amount, currency, invoice_url, created_at, credited_at"
)


# --- the Plisio client ---------------------------------------------------------------------


def from_settings(settings: Settings | None = None) -> PlisioClient:
    """A PlisioClient for the configured account. Building it costs nothing (the HTTP
    client is made on first call), so this is safe on any path."""
    from izgens.config import get_settings
    from izgens.plisio import PlisioClient

    s = settings or get_settings()
    secret = s.plisio_secret_key.get_secret_value() if s.plisio_secret_key else ""
    if not secret:
        raise errors.NotConfigured("payments are not configured (PLISIO_SECRET_KEY)")
    return PlisioClient(s.plisio_base_url, secret)


# the process-wide client (its connection pool is reused between callbacks and checkouts)
_plisio = Shared("plisio", from_settings, close=lambda client: client.close())
get_plisio_client = _plisio.get
reset_plisio_client = _plisio.reset


# --- packs and purchases -------------------------------------------------------------------


def list_packs(db: Database, user_id: uuid.UUID) -> list[Pack]:
    """The packs on sale; `Unauthenticated` once the user is gone (purged)."""
    rows = db.all("select id, credits, price, currency from izgens.active_packs(%s)", (user_id,))
    return [Pack.model_validate(r) for r in rows]


def list_purchases(
    db: Database, user_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[Purchase]:
    """The user's purchases, newest first, paged by (created_at, id); `Unauthenticated`
    once the user is gone (purged)."""
    after = decode_cursor(cursor, (datetime, uuid.UUID))
    at, last = (after[0], after[1]) if after else (None, None)
    rows = db.all(
        f"select {PURCHASE_COLUMNS} from izgens.purchases_page(%s, %s, %s, %s)",
        (user_id, at, last, limit + 1),
    )
    items = [Purchase.model_validate(r) for r in rows[:limit]]
    more = len(rows) > limit
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if more else None
    return Page[Purchase](items=items, next_cursor=next_cursor)


def get_purchase_details(db: Database, purchase_id: uuid.UUID) -> PurchaseDetails:
    """The purchase row and its payment events, oldest first, in one read (operators)."""
    row = db.one(
        # money as decimal strings, not floats
        "select to_jsonb(p) || jsonb_build_object("
        "   'amount', p.amount::text, 'paid_amount', p.paid_amount::text) as purchase,"
        " coalesce((select jsonb_agg(to_jsonb(e) order by e.id) from public.payment_events e"
        "           where e.purchase_id = p.id), '[]'::jsonb) as events"
        " from public.purchases p where p.id = %s",
        (purchase_id,),
    )
    if row is None:
        raise errors.NotFound("purchase")
    return PurchaseDetails.model_validate(row)


# --- checkout ------------------------------------------------------------------------------


def _callback_url(settings: Settings) -> str:
    base = settings.public_base_urls.get("plisio_webhook")
    if not base:
        # a purchase whose callbacks go nowhere would only be settled by reconciliation
        raise errors.NotConfigured("payments are not configured (PUBLIC_BASE_URLS)")
    return base.rstrip("/") + CALLBACK_PATH


def _return_urls(settings: Settings, purchase_id: uuid.UUID) -> tuple[str | None, str | None]:
    frontend = settings.frontend_url.rstrip("/")
    if not frontend:
        return None, None
    page = f"{frontend}/purchases/{purchase_id}"
    return f"{page}?result=paid", f"{page}?result=failed"


def start_checkout(
    db: Database,
    *,
    user_id: uuid.UUID,
    pack_id: str,
    idempotency_key: str,
    client_ip: str | None,
    client: PlisioClient | None = None,
    settings: Settings | None = None,
) -> Checkout:
    """Admit a purchase and make sure it has a Plisio invoice.

    A retried click (same Idempotency-Key) gets the same purchase back; if that purchase
    has no invoice yet (the first attempt failed, or runs concurrently) Plisio is asked
    again with `return_existing`, which answers the invoice it already made for this
    order rather than a second one. Two SQL calls and at most one Plisio call.
    `client_ip` is what `izgens.http.client_ip` answers: a valid address or None.
    """
    from izgens.config import get_settings

    s = settings or get_settings()
    callback_url = _callback_url(s)  # before anything is written
    row = db.one(
        "select * from izgens.start_checkout(%s, %s, %s, %s, %s, %s, %s)",
        (
            user_id,
            pack_id,
            idempotency_key,
            client_ip,
            s.rate_checkout_user,
            s.rate_window_seconds,
            s.rate_checkout_ip,
        ),
        idempotent=True,  # a replay finds the row a lost attempt made (same key)
    )
    assert row is not None  # the function returns a row or raises
    if row["invoice_url"] or row["status"] != "pending":
        return Checkout(purchase_id=row["id"], invoice_url=row["invoice_url"], status=row["status"])

    plisio = client or get_plisio_client()
    success_url, fail_url = _return_urls(s, row["id"])
    invoice = plisio.create_invoice(
        order_number=str(row["id"]),
        order_name=f"{row['credits']} credits",  # ASCII: Plisio's hashing of others is unsure
        source_amount=row["amount"],
        source_currency=row["currency"],
        callback_url=callback_url,
        success_url=success_url,
        fail_url=fail_url,
        expire_min=INVOICE_EXPIRE_MIN,
    )
    attached = db.one(
        "select * from izgens.attach_invoice(%s, %s, %s)",
        (row["id"], invoice.txn_id, invoice.invoice_url),
    )
    assert attached is not None
    log_event(logger, "checkout", purchase_id=str(row["id"]), pack_id=row["pack_id"])
    return Checkout(
        purchase_id=attached["id"], invoice_url=attached["invoice_url"], status=attached["status"]
    )
