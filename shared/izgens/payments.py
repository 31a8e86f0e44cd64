"""Buying credits with Plisio: packs, checkout, purchases, callbacks and reconciliation.

Importing this module costs no httpx: the Plisio client is imported when a checkout or a
reconciliation first needs it, so the account and webhook functions start fast.

The money rules live in SQL (`infra/supabase/migrations/..._payments.sql`); this module
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

import json
import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from izgens import errors, jsonbody
from izgens.clients import Shared
from izgens.logs import log_event
from izgens.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor
from izgens.plisio_signature import InvalidSignature, canonical_sha256, verify_callback

if TYPE_CHECKING:
    from izgens.config import Settings
    from izgens.db import Database
    from izgens.plisio import Operation, PlisioClient

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

logger = logging.getLogger("izgens.payments")

# Long enough to pay with a slow coin, short enough that a stale price does not linger.
INVOICE_EXPIRE_MIN = 180
CALLBACK_PATH = "/plisio/callback?json=true"

PURCHASE_COLUMNS = (
    "id, pack_id, status, credits, amount, currency, invoice_url, created_at, credited_at"
)


# --- models at the edges -------------------------------------------------------------------


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


# --- recording events ----------------------------------------------------------------------


def _record(
    db: Database, payload: dict[str, Any], event_sha256: str, source: str
) -> CallbackReport:
    row = db.one(
        "select izgens.record_payment_event(%s::jsonb, %s, %s) as report",
        (json.dumps(jsonbody.storable(payload), ensure_ascii=False), event_sha256, source),
    )
    assert row is not None
    return CallbackReport.model_validate(row["report"])


def handle_callback(
    db: Database, raw_body: bytes, *, secret_key: str | None = None
) -> CallbackReport:
    """Verify a Plisio callback, then store and apply it in one SQL round trip.

    A missing or wrong `verify_hash` (or a body that is not a JSON object) raises
    `InvalidSignature` before anything is written; only a log line (never the body) records
    the refusal. A verified event is identified by what was verified (its canonical form),
    so a replay with its keys reordered or its spacing changed is a duplicate.
    """
    if secret_key is None:
        from izgens.config import get_settings

        configured = get_settings().plisio_secret_key
        secret_key = configured.get_secret_value() if configured else ""
    try:
        fields = verify_callback(raw_body, secret_key)
    except InvalidSignature as exc:
        log_event(
            logger,
            "plisio callback refused",
            logging.WARNING,
            reason=exc.detail,
            bytes=len(raw_body),
        )
        raise
    payload = jsonbody.parse(raw_body)  # as received, verify_hash included
    report = _record(db, payload, canonical_sha256(fields), "callback")
    _log_report("plisio callback", report)
    return report


def _log_report(message: str, report: CallbackReport) -> None:
    level = logging.WARNING if report.flagged else logging.INFO
    log_event(
        logger,
        message,
        level,
        event_id=report.event_id,
        duplicate=report.duplicate,
        purchase_id=str(report.purchase_id) if report.purchase_id else None,
        status=report.status,
        credited=report.credited,
        flagged=report.flagged,
    )


# --- reconciliation ------------------------------------------------------------------------


def _text(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def operation_payload(op: Operation) -> dict[str, Any]:
    """An operation read from Plisio, in the callback's field names the SQL reads.

    `amount` is what arrived (`actual_sum`) and `invoice_total_sum` what was due, both in
    the coin, as in a callback; the whole operation rides along for the record.
    """
    params = op.params
    fields: dict[str, Any] = {
        "txn_id": op.id,
        "order_number": op.order_number,
        "status": op.status,
        "source_currency": params.source_currency or op.source_currency,
        "source_amount": _text(params.source_amount),
        "amount": _text(op.actual_sum),
        "invoice_total_sum": _text(op.amount),
        "pending_amount": _text(op.pending_sum),
        "currency": op.currency or op.psys_cid,
        "operation": op.model_dump(mode="json"),
    }
    return {k: v for k, v in fields.items() if v is not None}


def _operations_for(client: PlisioClient, purchase_id: str, txn_id: str | None) -> list[Operation]:
    found = client.find_operations(purchase_id)
    if found or not txn_id:
        return found
    # the search missed it: read the invoice we know; the SQL still matches it by the
    # order_number Plisio holds for it, never by this txn_id
    try:
        return [client.get_operation(txn_id)]
    except errors.ProviderRejected:
        return []


def reconcile_pending_purchases(
    db: Database,
    client: PlisioClient,
    *,
    older_than: timedelta = timedelta(minutes=30),
    limit: int = 100,
    expire_uninvoiced_after: timedelta | None = None,
) -> ReconcileReport:
    """Settle purchases still `pending` after `older_than` from Plisio's own records.

    Bounded: at most `limit` purchases per run, least recently checked first, each
    stamped so the next run moves on. Every operation found goes through
    `izgens.record_payment_event` with source `reconciliation`, so a lost callback and a
    late one end the same way and the pack is credited at most once. A purchase Plisio
    cannot answer for now is counted in `errors` and tried again later. One that never got
    an invoice, and of which Plisio knows nothing, is expired once older than
    `expire_uninvoiced_after` (else counted `missing` on every run).
    """
    seconds = max(0, int(older_than.total_seconds()))
    rows = db.all(
        "select id, plisio_txn_id from izgens.claim_reconciliation(%s, %s, %s)",
        (seconds, max(0, limit), max(60, seconds)),
        idempotent=False,
    )
    report = ReconcileReport(checked=len(rows))
    for row in rows:
        purchase_id = str(row["id"])
        try:
            operations = _operations_for(client, purchase_id, row["plisio_txn_id"])
        except errors.ProviderError as exc:
            report.errors += 1
            log_event(
                logger,
                "reconciliation could not read plisio",
                logging.WARNING,
                purchase_id=purchase_id,
                error=exc.code,
            )
            continue
        if not operations:
            if row["plisio_txn_id"] is None and expire_uninvoiced_after is not None:
                expired = db.all(
                    "select id from izgens.expire_uninvoiced_purchase(%s, %s)",
                    (row["id"], max(0, int(expire_uninvoiced_after.total_seconds()))),
                )
                if expired:
                    report.expired += 1
                    log_event(logger, "purchase never invoiced; expired", purchase_id=purchase_id)
                    continue
            report.missing += 1
            continue
        for op in operations:
            payload = operation_payload(op)
            outcome = _record(db, payload, canonical_sha256(payload), "reconciliation")
            if outcome.duplicate:
                report.duplicates += 1
                continue
            _log_report("plisio reconciliation", outcome)
            report.events += 1
            report.credited += outcome.credited
            report.flagged += outcome.flagged is not None
    log_event(logger, "reconciliation done", **report.model_dump())
    return report
