"""PlisioClient over real HTTP against the simulator, plus narrow MockTransport error mapping."""

from __future__ import annotations

import logging
import socket
import traceback
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from izgens.errors import (
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from izgens.plisio import Operation, PaymentOutcome, PlisioClient, PlisioRejected

# distinctive, so a leak is easy to find; the simulator's key is the `sim_secret` fixture
MOCK_SECRET = "mock-secret-5b7d2a-DO-NOT-LEAK"
CALLBACK = "https://example.test/plisio_webhook/plisio/callback?json=true&purchase=p1"


def invoice_args(order_number: str = "order-1", **overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "order_number": order_number,
        "order_name": "100 credits",
        "source_amount": Decimal("10.25"),
        "source_currency": "USD",
        "callback_url": CALLBACK,
        "success_url": "https://izgens.test/credits?paid=1",
        "fail_url": "https://izgens.test/credits?paid=0",
        "expire_min": 60,
    }
    args.update(overrides)
    return args


def leaks(text: str, secret: str = MOCK_SECRET) -> bool:
    return secret in text


def exception_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# --- against the simulator -----------------------------------------------------------------


def test_create_invoice_returns_a_payable_invoice(
    plisio: PlisioClient, sim: httpx.Client, sim_url: str
) -> None:
    invoice = plisio.create_invoice(**invoice_args())
    assert len(invoice.txn_id) == 24
    assert invoice.invoice_url == f"{sim_url}/invoice/{invoice.txn_id}"
    assert invoice.invoice_total_sum == Decimal("10.25")
    page = sim.get(invoice.invoice_url)
    assert page.status_code == 200 and "10.250000 USDT_TRX" in page.text


def test_callback_url_with_its_own_query_survives_encoding(
    plisio: PlisioClient, sim: httpx.Client
) -> None:
    plisio.create_invoice(**invoice_args())
    (stored,) = sim.get("/sim/invoices").json()["invoices"]
    assert stored["callback_url"] == CALLBACK
    op = plisio.find_operations("order-1")[0]
    extra = op.params.model_extra or {}
    assert extra["success_invoice_url"] == "https://izgens.test/credits?paid=1"
    assert extra["fail_invoice_url"] == "https://izgens.test/credits?paid=0"
    assert extra["return_existing"] == "1" and extra["expire_min"] == "60"
    assert "api_key" not in extra


def test_a_retried_order_returns_the_same_invoice(plisio: PlisioClient, sim: httpx.Client) -> None:
    first = plisio.create_invoice(**invoice_args())
    again = plisio.create_invoice(**invoice_args())
    assert again.txn_id == first.txn_id
    assert len(sim.get("/sim/invoices").json()["invoices"]) == 1


def test_without_return_existing_a_reused_order_number_is_an_error(
    plisio: PlisioClient, api_url: str, sim_secret: str
) -> None:
    plisio.create_invoice(**invoice_args())
    params = {
        "api_key": sim_secret,
        "order_number": "order-1",
        "order_name": "x",
        "source_currency": "USD",
        "source_amount": "10.25",
    }
    answer = httpx.get(f"{api_url}/invoices/new", params=params)
    assert answer.status_code == 422
    assert answer.json()["status"] == "error"
    assert set(answer.json()["data"]) == {"name", "message", "code"}


def test_get_operation_reads_the_invoice(plisio: PlisioClient) -> None:
    invoice = plisio.create_invoice(**invoice_args())
    op = plisio.get_operation(invoice.txn_id)
    assert isinstance(op, Operation)
    assert op.id == invoice.txn_id
    assert op.type == "invoice"
    assert op.status == "new" and op.outcome is PaymentOutcome.OPEN
    assert op.order_number == "order-1"
    assert op.params.source_amount == Decimal("10.25")
    assert op.params.source_currency == "USD"
    assert op.psys_cid == "USDT_TRX" and op.amount == Decimal("10.25")


def test_find_operations_returns_only_exact_order_matches(plisio: PlisioClient) -> None:
    mine = plisio.create_invoice(**invoice_args("order-1"))
    plisio.create_invoice(**invoice_args("order-10"))  # the simulator's loose search finds it
    found = plisio.find_operations("order-1")
    assert [op.id for op in found] == [mine.txn_id]
    assert plisio.find_operations("order-404") == []


def test_payment_is_visible_through_get_operation(plisio: PlisioClient, sim: httpx.Client) -> None:
    invoice = plisio.create_invoice(**invoice_args())
    assert sim.post("/sim/pay", json={"txn_id": invoice.txn_id, "status": "mismatch"}).is_success
    op = plisio.get_operation(invoice.txn_id)
    assert op.status == "mismatch" and op.outcome is PaymentOutcome.PAID
    assert op.actual_sum == Decimal("11.25") and op.pending_sum == Decimal("-1")


def test_a_wrong_key_is_a_definite_refusal_without_the_key_in_it(
    api_url: str, sim_secret: str
) -> None:
    with PlisioClient(api_url, "wrong-" + sim_secret, backoff=0) as client:
        with pytest.raises(PlisioRejected) as caught:
            client.get_operation("65f0c0ffee00000000001042")
    err = caught.value
    assert isinstance(err, ProviderRejected) and err.http_status == 401
    assert not leaks(exception_text(err), sim_secret)


def test_validation_errors_carry_code_and_fields(plisio: PlisioClient) -> None:
    with pytest.raises(PlisioRejected) as caught:
        plisio.create_invoice(**invoice_args(order_name="   "))
    assert caught.value.http_status == 422
    assert caught.value.provider_code == "104"
    assert set(caught.value.fields) == {"order_name"}


def test_an_unsupported_currency_is_code_105(plisio: PlisioClient) -> None:
    with pytest.raises(PlisioRejected) as caught:
        plisio.create_invoice(**invoice_args(source_currency="XYZ"))
    assert caught.value.provider_code == "105"
    assert "Unsupported currency" in str(caught.value)


def test_an_unknown_operation_is_refused(plisio: PlisioClient) -> None:
    with pytest.raises(PlisioRejected) as caught:
        plisio.get_operation("000000000000000000000000")
    assert caught.value.http_status == 404


def test_bad_arguments_never_reach_plisio(plisio: PlisioClient, sim: httpx.Client) -> None:
    bad: list[dict[str, Any]] = [
        {"callback_url": "https://example.test/cb"},  # no json=true: a form callback
        {"callback_url": "/relative?json=true"},
        {"source_amount": Decimal("0")},
        {"source_amount": Decimal("NaN")},
        {"order_number": ""},
        {"expire_min": 0},
    ]
    for overrides in bad:
        with pytest.raises(ValueError):
            plisio.create_invoice(**invoice_args(**overrides))
    assert sim.get("/sim/invoices").json()["invoices"] == []


def test_connection_errors_are_unavailable_and_never_show_the_key() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nobody listens
    client = PlisioClient(f"http://127.0.0.1:{port}/api/v1", MOCK_SECRET, backoff=0)
    with client, pytest.raises(ProviderUnavailable) as caught:
        client.get_operation("65f0c0ffee00000000001042")
    assert not leaks(exception_text(caught.value))
    assert not leaks(repr(client))


def test_the_key_is_absent_from_every_log_record(
    plisio: PlisioClient, api_url: str, sim_secret: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")
    caplog.set_level(logging.DEBUG, logger="httpcore")
    # other servers in this session may have configured uvicorn's loggers quieter
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    invoice = plisio.create_invoice(**invoice_args())
    plisio.get_operation(invoice.txn_id)
    plisio.find_operations("order-1")
    with pytest.raises(PlisioRejected):
        plisio.get_operation("000000000000000000000000")
    with PlisioClient(api_url.replace("/api/v1", "/nowhere"), sim_secret, backoff=0) as other:
        with pytest.raises(ProviderRejected):
            other.get_operation("x")
    requests = [r for r in caplog.records if r.name == "httpx" and "HTTP Request" in r.message]
    assert len(requests) >= 5, "httpx's request log was not captured, so this test proves nothing"
    assert any(r.name == "uvicorn.access" for r in caplog.records)  # the server side, too
    for record in caplog.records:
        assert not leaks(record.getMessage(), sim_secret), record.getMessage()
        assert not leaks(repr(record.args), sim_secret), record.args


# --- error mapping with a mock transport ---------------------------------------------------


def mock_client(
    handler: Callable[[httpx.Request], httpx.Response],
) -> tuple[PlisioClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    client = PlisioClient(
        "https://api.plisio.test/api/v1",
        MOCK_SECRET,
        transport=httpx.MockTransport(record),
        backoff=0,
    )
    return client, seen


def envelope(code: int, message: str, name: str = "Unprocessable entity") -> dict[str, Any]:
    return {"status": "error", "data": {"name": name, "message": message, "code": code}}


def ok_invoice(request: httpx.Request) -> httpx.Response:
    data = {"txn_id": "t" * 24, "invoice_url": "https://x/invoice/t", "invoice_total_sum": 10.5}
    return httpx.Response(200, json={"status": "success", "data": data})


def test_the_key_is_sent_last_in_the_query_and_return_existing_is_on() -> None:
    client, seen = mock_client(ok_invoice)
    with client:
        invoice = client.create_invoice(**invoice_args())
    assert invoice.invoice_total_sum == Decimal("10.5")
    params = list(seen[0].url.params.multi_items())
    assert params[-1] == ("api_key", MOCK_SECRET)
    query = dict(params)
    assert query["return_existing"] == "1"
    assert query["callback_url"] == CALLBACK
    assert query["source_amount"] == "10.25"
    assert "json=true" not in {f"{k}={v}" for k, v in params}  # not a parameter of its own


def test_create_invoice_is_retried_on_5xx() -> None:
    answers = iter([httpx.Response(502, text="bad gateway"), None])

    def handler(request: httpx.Request) -> httpx.Response:
        return next(answers) or ok_invoice(request)

    client, seen = mock_client(handler)
    with client:
        client.create_invoice(**invoice_args())
    assert len(seen) == 2
    assert all(r.url.params["return_existing"] == "1" for r in seen)


@pytest.mark.parametrize(
    ("response", "error", "attempts"),
    [
        (
            httpx.Response(500, json=envelope(0, "boom", "Internal Server Error")),
            ProviderUnavailable,
            3,
        ),
        (httpx.Response(503, text="<html>down</html>"), ProviderUnavailable, 3),
        (httpx.Response(429, headers={"Retry-After": "0"}), ProviderRateLimited, 3),
        (httpx.Response(429, headers={"Retry-After": "30"}), ProviderRateLimited, 1),
        (httpx.Response(200, text="not json"), ProviderUnavailable, 3),
        (
            httpx.Response(200, json={"status": "success", "data": {"nope": 1}}),
            ProviderUnavailable,
            1,
        ),
        (httpx.Response(302, headers={"Location": "https://elsewhere"}), ProviderUnavailable, 3),
        (httpx.Response(422, json=envelope(104, '{"amount":"bad"}')), PlisioRejected, 1),
        (httpx.Response(200, json=envelope(116, "Insufficient funds")), PlisioRejected, 1),
        (httpx.Response(404, text="not found"), PlisioRejected, 1),
    ],
)
def test_answers_map_to_izgens_errors(
    response: httpx.Response, error: type[Exception], attempts: int
) -> None:
    client, seen = mock_client(lambda request: response)
    with client, pytest.raises(error) as caught:
        client.get_operation("65f0c0ffee00000000001042")
    assert len(seen) == attempts
    assert not isinstance(caught.value, httpx.HTTPError)


def test_rate_limit_carries_retry_after() -> None:
    client, _ = mock_client(lambda r: httpx.Response(429, headers={"Retry-After": "30"}))
    with client, pytest.raises(ProviderRateLimited) as caught:
        client.find_operations("order-1")
    assert caught.value.retry_after == 30


def test_rejections_carry_the_provider_code_and_fields() -> None:
    body = envelope(104, '{"source_amount":["too small","below min_sum_in"]}')
    client, _ = mock_client(lambda r: httpx.Response(422, json=body))
    with client, pytest.raises(PlisioRejected) as caught:
        client.create_invoice(**invoice_args())
    assert caught.value.provider_code == "104"
    assert caught.value.fields == {"source_amount": "too small; below min_sum_in"}


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectTimeout("connect timed out"),
        httpx.ReadTimeout("read timed out"),
        httpx.ConnectError("refused"),
        httpx.RemoteProtocolError("server hung up"),
    ],
)
def test_transport_failures_are_unavailable_after_retries(exc: Exception) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc

    client, seen = mock_client(handler)
    with client, pytest.raises(ProviderUnavailable) as caught:
        client.get_operation("65f0c0ffee00000000001042")
    assert len(seen) == 3
    assert not leaks(exception_text(caught.value))


def test_a_message_echoing_the_key_is_redacted() -> None:
    url = f"https://api.plisio.net/api/v1/operations/x?api_key={MOCK_SECRET}"
    body = envelope(0, f"Invalid key {MOCK_SECRET} for {url}", "Unauthorized")
    client, _ = mock_client(lambda r: httpx.Response(401, json=body))
    with client, pytest.raises(PlisioRejected) as caught:
        client.get_operation("x")
    assert not leaks(exception_text(caught.value))
    assert "[redacted]" in str(caught.value)


def test_operations_tolerate_numbers_unknown_fields_and_php_empty_arrays() -> None:
    op = {
        "id": "65f0c0ffee00000000001042",
        "status": "pending internal",
        "type": "invoice",
        "amount": 10.3,
        "pending_sum": "",
        "source_rate": "1.000000",
        "params": {"order_number": 1042, "source_amount": "10.", "brand_new_field": True},
        "tx": [{"txid": "abc"}],
        "something_new": {"nested": 1},
    }
    empty = {"id": "65f0c0ffee00000000001043", "status": "_111", "params": []}
    listing = {"status": "success", "data": {"operations": [op, empty], "_meta": {}}}
    client, seen = mock_client(lambda r: httpx.Response(200, json=listing))
    with client:
        (found,) = client.find_operations("1042")
    assert seen[0].url.params["search"] == "1042" and seen[0].url.params["type"] == "invoice"
    assert found.order_number == "1042"
    assert found.amount == Decimal("10.3") and found.pending_sum is None
    assert found.params.source_amount == Decimal("10")
    assert found.outcome is PaymentOutcome.OPEN
    assert (found.model_extra or {})["something_new"] == {"nested": 1}


def test_repr_never_shows_the_key() -> None:
    client, _ = mock_client(ok_invoice)
    assert not leaks(repr(client))
    assert "api.plisio.test" in repr(client)
