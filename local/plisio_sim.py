"""A Plisio simulator speaking the real API over HTTP, for the dev stack and the tests.

It owns three surfaces:

* the API under `/api/v1` as `../shared/reference/plisio.md` describes it: `GET /invoices/new`,
  `GET /operations/{id}`, `GET /operations?search=`; every call needs `api_key` equal to the
  configured secret; answers use Plisio's `{"status": ..., "data": ...}` envelope;
* a payable invoice page at `/invoice/{txn_id}` (the `invoice_url`), with buttons a person
  can press;
* a driver for tests and the dev server: `POST /sim/pay`, `GET /sim/invoices`,
  `POST /sim/reset`.

Paying behaves like Plisio: a `pending` callback when money arrives, then the final status,
each sent once (Plisio does not retry) and recorded with the answer it got. Callbacks go to
`callback_url` as JSON signed with `verify_hash` when it carries `json=true`, else as a form
signed over PHP `serialize()`, exactly as the real service does. The coin is USDT_TRX at a
rate of 1.0, so the crypto amount equals the fiat amount.

Where Plisio's behaviour is undocumented the simulator picks and says so: a wrong key gets
`401` with the error envelope (Yii's wording), an unknown operation `404`, and validation
error codes other than `105` (unsupported currency) are the simulator's own.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import json
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from izgens.plisio import sign_callback

__all__ = ["SimConfig", "create_app", "main", "run"]

logger = logging.getLogger("izgens_local.plisio_sim")

CRYPTO = Decimal("0.000001")
FIAT = Decimal("0.01")
PAY_STATUSES = ("completed", "mismatch", "expired", "cancelled", "error")
OPEN = ("new", "pending")
CODE_VALIDATION = 104  # the simulator's choice; Plisio publishes no table
CODE_UNSUPPORTED_CURRENCY = 105  # documented (§1)
CODE_DUPLICATE_ORDER = 106  # the simulator's choice


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
class _Invoice:
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


class _State:
    """Invoices by txn id; every read and write holds the lock (tests poke from threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.invoices: dict[str, _Invoice] = {}

    def by_order(self, order_number: str) -> _Invoice | None:
        for invoice in self.invoices.values():
            if invoice.order_number == order_number:
                return invoice
        return None


def _crypto(value: Decimal) -> str:
    return str(value.quantize(CRYPTO))


def _fiat(value: Decimal) -> str:
    """At least two decimals, like Plisio's `"15.00"`; finer amounts keep their digits."""
    return str(value.quantize(FIAT)) if value == value.quantize(FIAT) else format(value, "f")


def _envelope_error(http_status: int, name: str, message: str, code: int) -> JSONResponse:
    body = {"status": "error", "data": {"name": name, "message": message, "code": code}}
    return JSONResponse(body, status_code=http_status)


def _invalid(message: dict[str, str] | str, code: int = CODE_VALIDATION) -> JSONResponse:
    text = message if isinstance(message, str) else json.dumps(message)
    return _envelope_error(422, "Unprocessable entity", text, code)


def _success(data: Any) -> JSONResponse:
    return JSONResponse({"status": "success", "data": data})


def _php_serialize_flat(fields: dict[str, str]) -> str:
    """PHP serialize() of a flat string array, which form callbacks are signed over (§4.2)."""
    parts = [f"a:{len(fields)}:{{"]
    for key, value in fields.items():
        parts.append(f's:{len(key.encode())}:"{key}";s:{len(value.encode())}:"{value}";')
    return "".join(parts) + "}"


def _encode_callback(
    fields: dict[str, str], secret: str, url: str
) -> tuple[bytes, str, dict[str, str]]:
    """The body Plisio would post: sorted fields, `verify_hash` last."""
    ordered = dict(sorted(fields.items()))
    if ("json", "true") in parse_qsl(urlsplit(url).query):
        sent = {**ordered, "verify_hash": sign_callback(ordered, secret)}
        body = json.dumps(sent, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return body, "application/json", sent
    mac = hmac.new(secret.encode(), _php_serialize_flat(ordered).encode(), hashlib.sha1)
    sent = {**ordered, "verify_hash": mac.hexdigest()}
    return urlencode(sent).encode("ascii"), "application/x-www-form-urlencoded", sent


def _redact_query(raw: bytes) -> bytes:
    """The query string with every `api_key` value replaced; other pairs stay byte for byte."""
    pairs = []
    for pair in raw.split(b"&"):
        name = unquote_plus(pair.split(b"=", 1)[0].decode("latin-1"))
        pairs.append(b"api_key=[redacted]" if name == "api_key" else pair)
    return b"&".join(pairs)


class _RedactKey:
    """Keeps `api_key` out of the server's access log, whoever serves the app.

    uvicorn (like most servers) logs the request's query string from the ASGI scope when the
    response starts; by then the app has checked the key, so the scope's copy is redacted
    just before that moment.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def redact_then_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                scope["query_string"] = _redact_query(scope.get("query_string", b""))
            await send(message)

        try:
            await self.app(scope, receive, redact_then_send)
        finally:
            scope["query_string"] = _redact_query(scope.get("query_string", b""))


class _Sim:
    def __init__(self, config: SimConfig) -> None:
        self.config = config
        self.state = _State()

    # -- helpers --------------------------------------------------------------------------

    def _authorised(self, request: Request) -> JSONResponse | None:
        given = request.query_params.get("api_key", "")
        if given and hmac.compare_digest(given.encode(), self.config.secret_key.encode()):
            return None
        return _envelope_error(
            401, "Unauthorized", "Your request was made with invalid credentials.", 0
        )

    def _public_base(self, request: Request) -> str:
        if self.config.public_url:
            return self.config.public_url.rstrip("/")
        return str(request.base_url).rstrip("/")

    def _operation(self, inv: _Invoice) -> dict[str, Any]:
        """Plisio's OperationDto, numbers as strings as Plisio sends them."""
        paid = inv.paid
        return {
            "id": inv.txn_id,
            "user_id": 1,
            "shop_id": self.config.merchant_id,
            "type": "invoice",
            "status": inv.status,
            "pending_sum": _crypto(inv.due - paid),
            "psys_cid": inv.currency,
            "currency": inv.currency,
            "source_currency": inv.source_currency,
            "source_rate": _crypto(self.config.source_rate),
            "fee": "0.000000",
            "params": dict(inv.params),
            "expire_at_utc": inv.expire_at,
            "created_at_utc": inv.created_at,
            "amount": _crypto(inv.due),
            "sum": _crypto(inv.due),
            "commission": "0.000000",
            "tx_url": [],
            "tx_id": [],
            "tx": [],
            "confirmations": self.config.confirmations if inv.status != "new" else 0,
            "actual_sum": _crypto(paid),
            "actual_commission": "0.000000",
            "actual_fee": "0.000000",
            "actual_invoice_sum": _crypto(paid),
            "parent_id": None,
        }

    def _callback_fields(self, inv: _Invoice) -> dict[str, str]:
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
            "amount": _crypto(inv.paid),
            "pending_amount": _crypto(inv.due - inv.paid),
            "currency": inv.currency,
            "psys_cid": inv.currency,
            "source_currency": inv.source_currency,
            "source_amount": _fiat(inv.source_amount),
            "source_rate": _crypto(self.config.source_rate),
            "invoice_commission": "0.000000",
            "invoice_sum": _crypto(inv.due),
            "invoice_total_sum": _crypto(inv.due),
            "confirmations": str(confirmations),
            "comment": f"Invoice details: {inv.comment_base}",
        }

    def _view(self, inv: _Invoice) -> dict[str, Any]:
        return {
            "txn_id": inv.txn_id,
            "order_number": inv.order_number,
            "order_name": inv.order_name,
            "status": inv.status,
            "source_amount": _fiat(inv.source_amount),
            "source_currency": inv.source_currency,
            "amount": _crypto(inv.due),
            "paid": _crypto(inv.paid),
            "currency": inv.currency,
            "invoice_url": inv.invoice_url,
            "callback_url": inv.params.get("callback_url"),
            "created_at_utc": inv.created_at,
            "expire_at_utc": inv.expire_at,
            "callbacks": [dict(c) for c in inv.callbacks],
        }

    def _callback_url(self, inv: _Invoice) -> str | None:
        params = inv.params
        if inv.status in ("completed", "mismatch") and params.get("success_callback_url"):
            return params["success_callback_url"]
        if inv.status in ("expired", "cancelled", "error") and params.get("fail_callback_url"):
            return params["fail_callback_url"]
        return params.get("callback_url") or None

    async def _notify(self, txn_id: str) -> dict[str, Any]:
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
            body, content_type, sent = _encode_callback(fields, self.config.secret_key, url)
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
            return _invalid(missing)
        currency = q.get("currency") or self.config.coin
        if currency != self.config.coin:
            return _invalid(
                f"Unsupported currency attribute value: {json.dumps({'currency': currency})}",
                CODE_UNSUPPORTED_CURRENCY,
            )
        source_currency = q.get("source_currency", "")
        raw_source, raw_amount = q.get("source_amount", ""), q.get("amount", "")
        if raw_source:
            if not source_currency:
                return _invalid({"source_currency": "Source Currency cannot be blank."})
            if source_currency not in self.config.fiat_currencies:
                value = json.dumps({"source_currency": source_currency})
                return _invalid(
                    f"Unsupported currency attribute value: {value}", CODE_UNSUPPORTED_CURRENCY
                )
            source_amount = _positive(raw_source)
            if source_amount is None:
                return _invalid({"source_amount": "Source Amount must be a positive number."})
            due = (source_amount * self.config.source_rate).quantize(CRYPTO)
        elif raw_amount:
            due_or_none = _positive(raw_amount)
            if due_or_none is None:
                return _invalid({"amount": "Amount must be a positive number."})
            due = due_or_none.quantize(CRYPTO)
            source_currency = source_currency or "USD"
            source_amount = due / self.config.source_rate
        else:
            return _invalid({"amount": "Amount cannot be blank."})
        for name in ("callback_url", "success_callback_url", "fail_callback_url"):
            url = q.get(name)
            if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc):
                return _invalid({name: f"{name} is not a valid URL."})
        expire_raw = q.get("expire_min", "")
        expire_min = self.config.default_expire_min
        if expire_raw:
            try:
                expire_min = int(expire_raw)
            except ValueError:
                return _invalid({"expire_min": "Expire Min must be an integer."})
            if expire_min <= 0:
                return _invalid({"expire_min": "Expire Min must be positive."})

        order_number = q["order_number"].strip()
        # Plisio only checks that the flag is present: `return_existing=0` still enables it
        return_existing = "return_existing" in q
        base = self._public_base(request)
        now = int(time.time())
        with self.state.lock:
            existing = self.state.by_order(order_number)
            if existing is not None:
                if not return_existing:
                    return _invalid(
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
                    source_amount=_fiat(source_amount),
                    source_currency=source_currency,
                    amount=_crypto(due),
                    currency=currency,
                )
                inv = _Invoice(
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
                "invoice_total_sum": _crypto(inv.due),
            }
        response = _success(data)
        if created and self.config.notify_on_create:
            from starlette.background import BackgroundTask

            response.background = BackgroundTask(self._notify, data["txn_id"])
        return response

    async def operation(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        with self.state.lock:
            inv = self.state.invoices.get(request.path_params["txn_id"])
            if inv is None:
                return _envelope_error(404, "Not Found", "Operation not found.", 0)
            return _success(self._operation(inv))

    async def operations(self, request: Request) -> Response:
        refused = self._authorised(request)
        if refused:
            return refused
        q = request.query_params
        try:
            page = max(1, int(q.get("page") or 1))
            limit = min(100, max(1, int(q.get("limit") or 10)))
        except ValueError:
            return _invalid({"page": "Page and limit must be integers."})
        search, kind, status = q.get("search", ""), q.get("type", ""), q.get("status", "")
        with self.state.lock:
            found = [
                self._operation(inv)
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
        return _success(
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

    # -- paying -----------------------------------------------------------------------------

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
                callbacks.append(await self._notify(txn))
            with self.state.lock:
                inv.status, inv.paid = status, wanted
            callbacks.append(await self._notify(txn))
        finally:
            with self.state.lock:
                inv.busy = False
        with self.state.lock:
            view = self._view(inv)
        return 200, {"invoice": view, "callbacks": callbacks}

    async def sim_pay(self, request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return JSONResponse({"error": "the body must be JSON"}, status_code=400)
        if not isinstance(body, dict):
            return JSONResponse({"error": "the body must be a JSON object"}, status_code=400)
        amount = body.get("amount")
        code, answer = await self.pay(
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
                self._view(inv)
                for inv in self.state.invoices.values()
                if order_number is None or inv.order_number == order_number
            ]
        return JSONResponse({"invoices": views})

    async def sim_reset(self, request: Request) -> Response:
        with self.state.lock:
            self.state.invoices.clear()
        return JSONResponse({"ok": True})

    # -- the page a person pays on ----------------------------------------------------------

    async def invoice_page(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        with self.state.lock:
            inv = self.state.invoices.get(txn_id)
            if inv is None:
                return HTMLResponse(_page("Invoice not found", "<p>No such invoice.</p>"), 404)
            view = self._view(inv)
            paid = inv.status in ("completed", "mismatch")
            back = inv.params.get("success_invoice_url" if paid else "fail_invoice_url")
        e = html.escape
        rows = "".join(
            f"<tr><th>{e(label)}</th><td>{e(str(value))}</td></tr>"
            for label, value in (
                ("Order", view["order_name"]),
                ("Order number", view["order_number"]),
                ("Price", f"{view['source_amount']} {view['source_currency']}"),
                ("To pay", f"{view['amount']} {view['currency']}"),
                ("Received", f"{view['paid']} {view['currency']}"),
                ("Status", view["status"]),
            )
        )
        if view["status"] in OPEN:
            buttons = "".join(
                f'<form method="post" action="{e(txn_id)}/pay">'
                f'<input type="hidden" name="status" value="{status}">'
                f'<button type="submit" name="action" value="{status}">{e(label)}</button></form>'
                for status, label in (
                    ("completed", "Pay"),
                    ("mismatch", "Overpay"),
                    ("expired", "Underpay and let expire"),
                    ("cancelled", "Cancel"),
                )
            )
        else:
            buttons = "<p>This invoice is closed.</p>"
        link = (
            f'<p><a href="{e(back)}">To the site</a></p>'
            if back and view["status"] not in OPEN
            else ""
        )
        sent = "".join(
            f"<li>{e(c['status'])} → {e(json.dumps(c.get('response') or c.get('skipped')))}</li>"
            for c in view["callbacks"]
        )
        log = f"<h2>Callbacks</h2><ul>{sent}</ul>" if sent else ""
        content = f"<table>{rows}</table><div class='buttons'>{buttons}</div>{link}{log}"
        return HTMLResponse(_page(f"Invoice {txn_id}", content))

    async def invoice_action(self, request: Request) -> Response:
        txn_id = request.path_params["txn_id"]
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
        status = form.get("status") or form.get("action") or ""
        code, answer = await self.pay(txn_id, None, status, form.get("amount") or None)
        if code == 404:
            return HTMLResponse(_page("Invoice not found", "<p>No such invoice.</p>"), 404)
        if code != 200:
            message = html.escape(str(answer.get("error")))
            return HTMLResponse(_page("Not possible", f"<p>{message}</p>"), code)
        return RedirectResponse(request.url_for("invoice_page", txn_id=txn_id), 303)


def _positive(raw: str) -> Decimal | None:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value > 0 else None


def _str_or_none(value: object) -> str | None:
    return None if value in (None, "") else str(value)


def _page(title: str, content: str) -> str:
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;max-width:32rem;margin:2rem auto}"
        "th{text-align:left;padding-right:1rem}form{display:inline-block;margin:.5rem .5rem 0 0}"
        "</style></head>"
        f"<body><h1>{html.escape(title)}</h1><p><em>Plisio simulator</em></p>{content}</body>"
        "</html>"
    )


async def _api_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    name = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return _envelope_error(status, name, name, 0)


def create_app(config: SimConfig | None = None) -> ASGIApp:
    """The simulator as an ASGI app; each app has its own invoices."""
    sim = _Sim(config or SimConfig())
    app = Starlette(
        routes=[
            Route("/api/v1/invoices/new", sim.invoices_new, methods=["GET"]),
            Route("/api/v1/operations/{txn_id}", sim.operation, methods=["GET"]),
            Route("/api/v1/operations", sim.operations, methods=["GET"]),
            Route("/invoice/{txn_id}", sim.invoice_page, methods=["GET"], name="invoice_page"),
            Route("/invoice/{txn_id}/pay", sim.invoice_action, methods=["POST"]),
            Route("/sim/pay", sim.sim_pay, methods=["POST"]),
            Route("/sim/invoices", sim.sim_invoices, methods=["GET"]),
            Route("/sim/reset", sim.sim_reset, methods=["POST"]),
        ],
        exception_handlers={HTTPException: _api_error},
    )
    app.state.sim = sim
    return _RedactKey(app)


def run(host: str = "127.0.0.1", port: int = 8002, config: SimConfig | None = None) -> None:
    """Serve the simulator until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        log_level="info",
    )


def main() -> None:
    """`python -m izgens_local.plisio_sim`: port and key from the dev stack's variables."""
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        run(
            "127.0.0.1",
            int(os.environ.get("IZGENS_PLISIO_SIM_PORT", "8002")),
            SimConfig(secret_key=os.environ.get("PLISIO_SECRET_KEY") or "dev-plisio-secret"),
        )


if __name__ == "__main__":
    main()
