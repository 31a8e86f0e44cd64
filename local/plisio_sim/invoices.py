"""One simulator's invoices and what can happen to them: the views the API and the page
show, paying, and the callbacks paying sends."""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx

from izgens_local.plisio_sim.callbacks import encode_callback
from izgens_local.plisio_sim.state import (
    CRYPTO,
    OPEN,
    PAY_STATUSES,
    Invoice,
    SimConfig,
    State,
    crypto,
    fiat,
)

logger = logging.getLogger("izgens_local.plisio_sim")


class Sim:
    """The invoices and the config, shared by the API, the driver routes and the page."""

    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.state = State()

    def as_operation(self, inv: Invoice) -> dict[str, Any]:
        """Plisio's OperationDto, numbers as strings as Plisio sends them."""
        paid = inv.paid
        return {
            "id": inv.txn_id,
            "user_id": 1,
            "shop_id": self.config.merchant_id,
            "type": "invoice",
            "status": inv.status,
            "pending_sum": crypto(inv.due - paid),
            "psys_cid": inv.currency,
            "currency": inv.currency,
            "source_currency": inv.source_currency,
            "source_rate": crypto(self.config.source_rate),
            "fee": "0.000000",
            "params": dict(inv.params),
            "expire_at_utc": inv.expire_at,
            "created_at_utc": inv.created_at,
            "amount": crypto(inv.due),
            "sum": crypto(inv.due),
            "commission": "0.000000",
            "tx_url": [],
            "tx_id": [],
            "tx": [],
            "confirmations": self.config.confirmations if inv.status != "new" else 0,
            "actual_sum": crypto(paid),
            "actual_commission": "0.000000",
            "actual_fee": "0.000000",
            "actual_invoice_sum": crypto(paid),
            "parent_id": None,
        }

    def _callback_fields(self, inv: Invoice) -> dict[str, str]:
        """The string-valued callback fields of §3.1 for the invoice as it is now."""
        confirmations = self.config.confirmations if inv.status not in ("new", "pending") else 0
        return {
            "txn_id": inv.txn_id,
            "ipn_type": "invoice",
            "merchant": self.config.merchant,
            "merchant_id": self.config.merchant_id,
            "order_number": inv.order_number,
            "order_name": inv.order_name,
            "status": inv.status,
            "amount": crypto(inv.paid),
            "pending_amount": crypto(inv.due - inv.paid),
            "currency": inv.currency,
            "psys_cid": inv.currency,
            "source_currency": inv.source_currency,
            "source_amount": fiat(inv.source_amount),
            "source_rate": crypto(self.config.source_rate),
            "invoice_commission": "0.000000",
            "invoice_sum": crypto(inv.due),
            "invoice_total_sum": crypto(inv.due),
            "confirmations": str(confirmations),
            "comment": f"Invoice details: {inv.comment_base}",
        }

    def view(self, inv: Invoice) -> dict[str, Any]:
        return {
            "txn_id": inv.txn_id,
            "order_number": inv.order_number,
            "order_name": inv.order_name,
            "status": inv.status,
            "source_amount": fiat(inv.source_amount),
            "source_currency": inv.source_currency,
            "amount": crypto(inv.due),
            "paid": crypto(inv.paid),
            "currency": inv.currency,
            "invoice_url": inv.invoice_url,
            "callback_url": inv.params.get("callback_url"),
            "created_at_utc": inv.created_at,
            "expire_at_utc": inv.expire_at,
            "callbacks": [dict(c) for c in inv.callbacks],
        }

    def _callback_url(self, inv: Invoice) -> str | None:
        params = inv.params
        if inv.status in ("completed", "mismatch") and params.get("success_callback_url"):
            return params["success_callback_url"]
        if inv.status in ("expired", "cancelled", "error") and params.get("fail_callback_url"):
            return params["fail_callback_url"]
        return params.get("callback_url") or None

    async def notify(self, txn_id: str) -> dict[str, Any]:
        """Send one callback for the invoice's current status; record and return the exchange."""
        with self.state.lock:
            inv = self.state.invoices.get(txn_id)
            if inv is None:
                return {"error": "invoice vanished (reset?)"}
            url = self._callback_url(inv)
            fields = self._callback_fields(inv)
        record: dict[str, Any] = {"status": fields["status"], "url": url}
        if not url:
            record["skipped"] = "the invoice has no callback_url"
        else:
            body, content_type, sent = encode_callback(fields, self.config.secret_key, url)
            record["sent"] = sent
            try:
                async with httpx.AsyncClient(timeout=self.config.callback_timeout) as client:
                    answer = await client.post(
                        url, content=body, headers={"Content-Type": content_type}
                    )
                record["response"] = {"status_code": answer.status_code, "body": answer.text[:2000]}
            except httpx.HTTPError as exc:
                record["response"] = {"error": f"{type(exc).__name__}: {exc}"}
        with self.state.lock:
            inv = self.state.invoices.get(txn_id)
            if inv is not None:
                inv.callbacks.append(record)
        logger.info("callback %s %s -> %s", txn_id, fields["status"], record.get("response"))
        return record

    async def pay(
        self, txn_id: str | None, order_number: str | None, status: str, amount: str | None
    ) -> tuple[int, dict[str, Any]]:
        """Move an open invoice to `status`, sending callbacks as Plisio would."""
        if status not in PAY_STATUSES:
            return 422, {"error": f"status must be one of {', '.join(PAY_STATUSES)}"}
        wanted: Decimal | None = None
        if amount not in (None, ""):
            try:
                wanted = Decimal(str(amount))
            except InvalidOperation:
                return 422, {"error": "amount is not a decimal number"}
            if not wanted.is_finite() or wanted < 0:
                return 422, {"error": "amount must be zero or more"}
        with self.state.lock:
            inv = self.state.invoices.get(txn_id or "") if txn_id else None
            if inv is None and order_number:
                inv = self.state.by_order(order_number)
            if inv is None:
                return 404, {"error": "no such invoice"}
            if inv.status not in OPEN or inv.busy:
                return 409, {"error": f"the invoice is {inv.status}; only open ones can be paid"}
            due = inv.due
            if wanted is None:
                wanted = {
                    "completed": due,
                    "mismatch": due + self.config.overpay,
                    "expired": due * self.config.underpay_ratio,
                }.get(status, Decimal("0"))
            wanted = wanted.quantize(CRYPTO)
            problem = {
                "mismatch": "a mismatch pays more than due" if wanted <= due else None,
                "expired": "an expired invoice is paid less than due" if wanted >= due else None,
                "completed": "a completed invoice is paid something" if wanted <= 0 else None,
                "cancelled": "a cancelled invoice receives nothing" if wanted != 0 else None,
            }.get(status)
            if problem:
                return 422, {"error": problem}
            inv.busy = True
            if wanted > 0:
                inv.status, inv.paid = "pending", wanted
            txn = inv.txn_id
        callbacks = []
        try:
            if wanted > 0:
                callbacks.append(await self.notify(txn))
            with self.state.lock:
                inv.status, inv.paid = status, wanted
            callbacks.append(await self.notify(txn))
        finally:
            with self.state.lock:
                inv.busy = False
        with self.state.lock:
            view = self.view(inv)
        return 200, {"invoice": view, "callbacks": callbacks}
