"""The Plisio API client: the API key kept out of every URL we log, retried reads (`izgens.retry`), every answer mapped to the `izgens.errors` tree."""

from __future__ import annotations

import json
import logging
import re
import threading
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import httpx
from pydantic import (
    BaseModel,
    ValidationError,
)

from izgens.errors import (
    ProviderRateLimited,
    ProviderUnavailable,
)
from izgens.plisio.models import Invoice, Operation, PlisioRejected

# the signature half lives apart so a callback is verified without importing httpx
from izgens.retry import Retry, retry_after_seconds

__all__ = ["PlisioClient"]

logger = logging.getLogger("izgens.plisio")

_TXN_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")

_KEY_IN_URL_RE = re.compile(r"(api_key=)[^&\s\"'#]*")

_REDACTED = "[redacted]"

_M = TypeVar("_M", bound=BaseModel)


class _ApiKeyTransport(httpx.BaseTransport):
    """Adds `api_key` to the URL of the request actually sent, and only there.

    httpx logs `request.url` and attaches the request to its errors; both are the request
    the client built, which never carries the key.
    """

    def __init__(self, inner: httpx.BaseTransport, api_key: str) -> None:
        self._inner = inner
        self._api_key = api_key

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        keyed = httpx.Request(
            request.method,
            request.url.copy_add_param("api_key", self._api_key),
            headers=request.headers,
            stream=request.stream,
            extensions=request.extensions,
        )
        return self._inner.handle_request(keyed)

    def close(self) -> None:
        self._inner.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} api_key={_REDACTED}>"


def _decimal_text(value: Decimal | int | str, field: str) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{field} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"{field} must be a positive number")
    return format(amount, "f")


def _require_json_callback(url: str) -> None:
    # without json=true Plisio posts a form signed over PHP serialize(), which we do not verify
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("callback_url must be an absolute http(s) URL")
    if ("json", "true") not in parse_qsl(parts.query):
        raise ValueError("callback_url must carry json=true so callbacks arrive as JSON")


class PlisioClient:
    """Typed access to the three Plisio calls the credits shop needs.

    Every call is a GET that is safe to repeat, so each is retried (`retries` times, with
    exponential backoff and jitter) on timeouts, connection errors, 5xx and 429.
    `create_invoice` is retried too only because it sends `return_existing=1`: a retry for an
    order Plisio already invoiced returns that invoice instead of making a second one.
    Definite refusals are never retried. The httpx client is built on first use, so creating
    a `PlisioClient` costs nothing at cold start.
    """

    def __init__(
        self,
        base_url: str,
        secret_key: str,
        *,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
        backoff: float = 0.25,
        max_retry_wait: float = 2.0,
    ) -> None:
        if not secret_key:
            raise ValueError("PlisioClient needs the Plisio secret key")
        self._base_url = base_url.rstrip("/")
        self._secret_key = secret_key
        self._timeout = timeout
        self._transport = transport
        self._retry = Retry(
            retries=max(0, retries), backoff=max(0.0, backoff), max_wait=max_retry_wait
        )
        self._http: httpx.Client | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PlisioClient(base_url={self._base_url!r}, secret_key={_REDACTED!r})"

    def __enter__(self) -> PlisioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()

    # -- public calls ----------------------------------------------------------------------

    def create_invoice(
        self,
        *,
        order_number: str,
        order_name: str,
        source_amount: Decimal,
        source_currency: str,
        callback_url: str,
        success_url: str | None = None,
        fail_url: str | None = None,
        expire_min: int | None = None,
    ) -> Invoice:
        """Create (or, for an order already invoiced, fetch) the invoice for one purchase.

        `success_url` / `fail_url` are where the invoice page's "To the site" button leads
        (Plisio's `success_invoice_url` / `fail_invoice_url`); `callback_url` must carry
        `json=true`. The buyer picks the coin on Plisio's page.
        """
        if not order_number or not order_name or not source_currency:
            raise ValueError("order_number, order_name and source_currency are required")
        _require_json_callback(callback_url)
        params: dict[str, str] = {
            "order_number": order_number,
            "order_name": order_name,
            "source_currency": source_currency,
            "source_amount": _decimal_text(source_amount, "source_amount"),
            "callback_url": callback_url,
            "return_existing": "1",
        }
        if success_url:
            params["success_invoice_url"] = success_url
        if fail_url:
            params["fail_invoice_url"] = fail_url
        if expire_min is not None:
            if expire_min <= 0:
                raise ValueError("expire_min must be positive")
            params["expire_min"] = str(expire_min)
        data = self._call("/invoices/new", params)
        return self._parse(Invoice, data, "invoice")

    def get_operation(self, txn_id: str) -> Operation:
        """Re-read one invoice; the answer, not a callback, is what credits are based on."""
        if not _TXN_ID_RE.fullmatch(txn_id or ""):
            raise ValueError("txn_id is empty or malformed")
        data = self._call(f"/operations/{txn_id}", {})
        return self._parse(Operation, data, "operation")

    def find_operations(self, order_number: str) -> list[Operation]:
        """Every invoice Plisio holds for our order, including coin-switch siblings (§5.3).

        Plisio's `search` also matches tx ids and e-mails, so results are filtered to those
        whose `params.order_number` is exactly ours.
        """
        if not order_number:
            raise ValueError("order_number is required")
        data = self._call("/operations", {"search": order_number, "type": "invoice"})
        raw = data.get("operations", []) if isinstance(data, dict) else data
        if not isinstance(raw, list):
            raise ProviderUnavailable("Plisio sent an unreadable operations list")
        found = [self._parse(Operation, item, "operation") for item in raw]
        return [op for op in found if op.order_number == order_number]

    # -- plumbing --------------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:
                inner = self._transport or httpx.HTTPTransport()
                # trust_env=False: an environment proxy would get its own transport, one
                # that bypasses _ApiKeyTransport
                self._http = httpx.Client(
                    base_url=self._base_url,
                    timeout=self._timeout,
                    transport=_ApiKeyTransport(inner, self._secret_key),
                    headers={"Accept": "application/json"},
                    follow_redirects=False,
                    trust_env=False,
                )
            return self._http

    def _redact(self, text: str) -> str:
        return _KEY_IN_URL_RE.sub(rf"\g<1>{_REDACTED}", text.replace(self._secret_key, _REDACTED))

    def _call(self, path: str, params: dict[str, str]) -> Any:
        return self._retry.run(
            lambda: self._once(path, params),
            transient=lambda error: error.transient,
            what=f"plisio {path}",
        )

    def _once(self, path: str, params: dict[str, str]) -> Any:
        try:
            response = self._client().get(path, params=params)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(
                f"Plisio timed out ({type(exc).__name__})", transient=True
            ) from exc
        except (httpx.HTTPError, httpx.InvalidURL, httpx.StreamError) as exc:
            reason = self._redact(str(exc)) or type(exc).__name__
            raise ProviderUnavailable(
                f"Plisio could not be reached: {reason}", transient=True
            ) from exc
        return self._answer(response)

    def _answer(self, response: httpx.Response) -> Any:
        status = response.status_code
        try:
            payload = response.json()
        except ValueError:
            payload = None
        error = payload.get("data") if isinstance(payload, dict) else None
        is_error = isinstance(payload, dict) and payload.get("status") == "error"
        if not isinstance(error, dict):
            error = {}
        name = self._redact(str(error.get("name") or ""))
        message = self._redact(str(error.get("message") or ""))
        code = error.get("code")
        provider_code = str(code) if code is not None else None
        summary = ": ".join(part for part in (name, message) if part) or f"HTTP {status}"

        if status == 429:
            raise ProviderRateLimited(
                f"Plisio is rate limiting: {summary}",
                provider_code=provider_code,
                retry_after=retry_after_seconds(response.headers.get("retry-after")),
            )
        if status >= 500 or status == 408:
            raise ProviderUnavailable(
                f"Plisio failed: {summary}", provider_code=provider_code, transient=True
            )
        if is_error or 400 <= status < 500:
            raise PlisioRejected(
                f"Plisio refused the request: {summary}",
                provider_code=provider_code,
                http_status=status,
                name=name,
                fields=_field_errors(message),
            )
        if 200 <= status < 300 and isinstance(payload, dict) and payload.get("status") == "success":
            return payload.get("data")
        raise ProviderUnavailable(
            f"Plisio sent an unexpected answer (HTTP {status})", transient=True
        )

    @staticmethod
    def _parse(model: type[_M], data: Any, what: str) -> _M:
        try:
            return model.model_validate(data)
        except ValidationError:
            # the invoice may exist all the same: ambiguous, like a timeout
            raise ProviderUnavailable(f"Plisio sent an unreadable {what}") from None


def _field_errors(message: str) -> dict[str, str]:
    """Plisio's validation `message` is often a JSON object of field -> error(s)."""
    try:
        parsed = json.loads(message)
    except ValueError:
        return {}
    if not isinstance(parsed, dict):
        return {}
    out: dict[str, str] = {}
    for key, value in parsed.items():
        if isinstance(value, list):
            out[str(key)] = "; ".join(str(v) for v in value)
        else:
            out[str(key)] = str(value)
    return out
