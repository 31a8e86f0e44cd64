"""Payment events: verified callbacks and reconciliation from Plisio's records, both
through `izgens.record_payment_event`, so a lost callback and a late one end the same way."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from izgens import errors, jsonbody
from izgens.logs import log_event
from izgens.payments.models import CallbackReport, ReconcileReport
from izgens.plisio_signature import InvalidSignature, canonical_sha256, verify_callback

if TYPE_CHECKING:
    from izgens.db import Database
    from izgens.plisio import Operation, PlisioClient

logger = logging.getLogger("izgens.payments")


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
