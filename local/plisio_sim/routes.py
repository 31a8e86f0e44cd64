"""The simulator as an ASGI app: the API under `/api/v1`, the driver under `/sim/`, and
the invoice page (`pages`)."""

from __future__ import annotations

import hmac
import json
import secrets
import time
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from izgens_local.plisio_sim.envelope import (
    CODE_DUPLICATE_ORDER,
    CODE_UNSUPPORTED_CURRENCY,
    api_error,
    envelope_error,
    invalid,
    success,
)
from izgens_local.plisio_sim.invoices import Sim
from izgens_local.plisio_sim.pages import Pages
from izgens_local.plisio_sim.redact import RedactKey
from izgens_local.plisio_sim.state import CRYPTO, Invoice, SimConfig, crypto, fiat


class Api:
    """The API and the driver routes, over one simulator's invoices."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.config = sim.config
        self.state = sim.state

    # -- helpers --------------------------------------------------------------------------

    def _authorised(self, request: Request) -> JSONResponse | None:
        given = request.query_params.get("api_key", "")
        if given and hmac.compare_digest(given.encode(), self.config.secret_key.encode()):
            return None
        return envelope_error(
            401, "Unauthorized", "Your request was made with invalid credentials.", 0
        )

    def _public_base(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    # -- the API ----------------------------------------------------------------------------

    async def invoices_new(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        q = request.query_params
        missing = {
            name: f"{name.replace('_', ' ').capitalize()} cannot be blank."
            for name in ("order_number", "order_name")
            if not q.get(name, "").strip()
        }
        if missing:
            return invalid(missing)
        currency = q.get("currency") or self.config.coin
        if currency != self.config.coin:
            return invalid(
                f"Unsupported currency attribute value: {json.dumps({'currency': currency})}",
                CODE_UNSUPPORTED_CURRENCY,
            )
        source_currency = q.get("source_currency", "")
        raw_source, raw_amount = q.get("source_amount", ""), q.get("amount", "")
        if raw_source:
            if not source_currency:
                return invalid({"source_currency": "Source Currency cannot be blank."})
            if source_currency not in self.config.fiat_currencies:
                value = json.dumps({"source_currency": source_currency})
                return invalid(
                    f"Unsupported currency attribute value: {value}", CODE_UNSUPPORTED_CURRENCY
                )
            source_amount = _positive(raw_source)
            if source_amount is None:
                return invalid({"source_amount": "Source Amount must be a positive number."})
            due = (source_amount * self.config.source_rate).quantize(CRYPTO)
        elif raw_amount:
            due_or_none = _positive(raw_amount)
            if due_or_none is None:
                return invalid({"amount": "Amount must be a positive number."})
            due = due_or_none.quantize(CRYPTO)
            source_currency = source_currency or "USD"
            source_amount = due / self.config.source_rate
        else:
            return invalid({"amount": "Amount cannot be blank."})
        for name in ("callback_url", "success_callback_url", "fail_callback_url"):
            url = q.get(name)
            if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
                return invalid({name: f"{name} is not a valid URL."})
        expire_raw = q.get("expire_min", "")
        expire_min = self.config.default_expire_min
        if expire_raw:
            try:
                expire_min = int(expire_raw)
            except ValueError:
                return invalid({"expire_min": "Expire Min must be an integer."})
            if expire_min <= 0:
                return invalid({"expire_min": "Expire Min must be positive."})

        order_number = q["order_number"].strip()
        # Plisio only checks that the flag is present: `return_existing=0` still enables it
        return_existing = "return_existing" in q
        base = self._public_base(request)
        now = int(time.time())
        with self.state.lock:
            existing = self.state.by_order(order_number)
            if existing is not None:
                if not return_existing:
                    return invalid(
                        {"order_number": "Invoice with this order number already exists."},
                        CODE_DUPLICATE_ORDER,
                    )
                inv = existing
                created = False
            else:
                txn_id = secrets.token_hex(12)
                params = {k: v for k, v in q.items() if k != "api_key"}
                params.update(
                    order_number=order_number,
                    source_amount=fiat(source_amount),
                    source_currency=source_currency,
                    amount=crypto(due),
                    currency=currency,
                )
                inv = Invoice(
                    txn_id=txn_id,
                    order_number=order_number,
                    order_name=q["order_name"],
                    source_currency=source_currency,
                    source_amount=source_amount,
                    due=due,
                    currency=currency,
                    invoice_url=f"{base}/invoice/{txn_id}",
                    comment_base=f"{base}/invoice/{txn_id}",
                    created_at=now,
                    expire_at=now + expire_min * 60,
                    params=params,
                )
                self.state.invoices[txn_id] = inv
                created = True
            data = {
                "txn_id": inv.txn_id,
                "invoice_url": inv.invoice_url,
                "invoice_total_sum": crypto(inv.due),
            }
        response = success(data)
        if created and self.config.notify_on_create:
            from starlette.background import BackgroundTask

            response.background = BackgroundTask(self.sim.notify, data["txn_id"])
        return response

    async def operation(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        with self.state.lock:
            inv = self.state.invoices.get(request.path_params["txn_id"])
            if inv is None:
                return envelope_error(404, "Not Found", "Operation not found.", 0)
            return success(self.sim.as_operation(inv))

    async def operations(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        q = request.query_params
        try:
            page = max(1, int(q.get("page") or 1))
            limit = min(100, max(1, int(q.get("limit") or 10)))
        except ValueError:
            return invalid({"page": "Page and limit must be integers."})
        search, kind, status = q.get("search", ""), q.get("type", ""), q.get("status", "")
        with self.state.lock:
            found = [
                self.sim.as_operation(inv)
                for inv in sorted(
                    self.state.invoices.values(), key=lambda i: i.created_at, reverse=True
                )
                if (not kind or kind == "invoice")
                and (not status or status == inv.status)
                and (
                    not search
                    or search == inv.txn_id
                    or search in inv.order_number  # Plisio's search is a loose match
                    or search == inv.params.get("email")
                )
            ]
        total = len(found)
        start = (page - 1) * limit
        return success(
            {
                "operations": found[start : start + limit],
                "_links": {"self": {"href": str(request.url.remove_query_params("api_key"))}},
                "_meta": {
                    "totalCount": total,
                    "pageCount": max(1, -(-total // limit)),
                    "currentPage": page,
                    "perPage": limit,
                },
            }
        )

    # -- the driver -------------------------------------------------------------------------

    async def sim_pay(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        amount = body.get("amount")
        code, answer = await self.sim.pay(
            _str_or_none(body.get("txn_id")),
            _str_or_none(body.get("order_number")),
            str(body.get("status", "")),
            None if amount is None else str(amount),
        )
        return JSONResponse(answer, status_code=code)

    async def sim_invoices(self, request: Request) -> Response:
        order_number = request.query_params.get("order_number")
        with self.state.lock:
            views = [
                self.sim.view(inv)
                for inv in self.state.invoices.values()
                if order_number is None or inv.order_number == order_number
            ]
        return JSONResponse({"invoices": views})

    async def sim_reset(self, request: Request) -> Response:
        with self.state.lock:
            self.state.invoices.clear()
        return JSONResponse({"ok": True})


def _positive(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def create_app(config: SimConfig | None = None) -> ASGIApp:
    """The simulator as an ASGI app; each app has its own invoices."""
    sim = Sim(config or SimConfig())
    api, pages = Api(sim), Pages(sim)
    app = Starlette(
        routes=[
            Route("/api/v1/invoices/new", api.invoices_new, methods=["GET"]),
            Route("/api/v1/operations/{txn_id}", api.operation, methods=["GET"]),
            Route("/api/v1/operations", api.operations, methods=["GET"]),
            Route("/invoice/{txn_id}", pages.invoice_page, methods=["GET"], name="invoice_page"),
            Route("/invoice/{txn_id}/pay", pages.invoice_action, methods=["POST"]),
            Route("/sim/pay", api.sim_pay, methods=["POST"]),
            Route("/sim/invoices", api.sim_invoices, methods=["GET"]),
            Route("/sim/reset", api.sim_reset, methods=["POST"]),
        ],
        exception_handlers={HTTPException: api_error},
    )
    app.state.sim = sim
    return RedactKey(app)
