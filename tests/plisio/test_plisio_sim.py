"""The Plisio simulator: paying sends signed callbacks the way Plisio does, once each."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import httpx
import pytest

from izgens.plisio import PaymentOutcome, PlisioClient, verify_callback
from izgens_local.plisio_sim import SimConfig, create_app

if TYPE_CHECKING:  # the fixtures' types
    from collections.abc import Callable

    from conftest import Received, Receiver

    from izgens_local.servers import ServerThread

CALLBACK_FIELDS = {
    "txn_id",
    "ipn_type",
    "merchant",
    "merchant_id",
    "order_number",
    "order_name",
    "status",
    "amount",
    "pending_amount",
    "currency",
    "psys_cid",
    "source_currency",
    "source_amount",
    "source_rate",
    "invoice_commission",
    "invoice_sum",
    "invoice_total_sum",
    "confirmations",
    "comment",
}


def create(plisio: PlisioClient, receiver: Receiver, order: str = "order-1", **kw: Any) -> str:
    args: dict[str, Any] = {
        "order_number": order,
        "order_name": "100 credits",
        "source_amount": Decimal("10.25"),
        "source_currency": "USD",
        "callback_url": f"{receiver.url}/plisio/callback?json=true",
        "success_url": None,
        "fail_url": None,
        "expire_min": None,
    }
    args.update(kw)
    return plisio.create_invoice(**args).txn_id


def keys_in_order(raw: bytes) -> list[str]:
    return [k for k, _ in json.loads(raw, object_pairs_hook=lambda pairs: pairs)]


def verified(receiver: Receiver, secret: str) -> list[dict[str, Any]]:
    return [verify_callback(call.body, secret) for call in receiver.calls]


def test_pay_sends_pending_then_completed_signed_callbacks(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, sim_secret: str
) -> None:
    txn_id = create(plisio, receiver)
    answer = sim.post("/sim/pay", json={"order_number": "order-1", "status": "completed"})
    assert answer.status_code == 200, answer.text
    assert [c["status"] for c in answer.json()["callbacks"]] == ["pending", "completed"]
    assert all(c["response"]["status_code"] == 200 for c in answer.json()["callbacks"])

    assert [c.path for c in receiver.calls] == ["/plisio/callback?json=true"] * 2
    assert all(c.headers["Content-Type"] == "application/json" for c in receiver.calls)
    pending, completed = verified(receiver, sim_secret)
    for fields, call in zip((pending, completed), receiver.calls, strict=True):
        assert set(fields) == CALLBACK_FIELDS
        assert all(isinstance(v, str) for v in fields.values())
        order = keys_in_order(call.body)
        assert order[-1] == "verify_hash" and order[:-1] == sorted(order[:-1])
        assert (
            call.body
            == json.dumps(json.loads(call.body), separators=(",", ":"), ensure_ascii=False).encode()
        )  # compact on the wire too
    assert pending["status"] == "pending" and completed["status"] == "completed"
    assert completed["txn_id"] == txn_id and completed["order_number"] == "order-1"
    assert completed["ipn_type"] == "invoice" and completed["psys_cid"] == "USDT_TRX"
    assert Decimal(completed["amount"]) == Decimal(completed["source_amount"]) == Decimal("10.25")
    assert Decimal(completed["pending_amount"]) == 0
    assert "/" in completed["comment"]
    # what the sim reports sending is what arrived
    assert answer.json()["callbacks"][1]["sent"] == json.loads(receiver.calls[1].body)
    assert plisio.get_operation(txn_id).outcome is PaymentOutcome.PAID


def test_the_receiver_can_re_read_the_operation_during_each_callback(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, api_url: str, sim_secret: str
) -> None:
    """A webhook re-reads the operation before acting: the sim must answer while it waits,
    and already show the status the callback announces."""
    reader = PlisioClient(api_url, sim_secret, backoff=0)

    def reread(call: Received) -> None:
        call.seen_status = reader.get_operation(json.loads(call.body)["txn_id"]).status

    receiver.on_call = reread
    with reader:
        create(plisio, receiver)
        paid = sim.post("/sim/pay", json={"order_number": "order-1", "status": "completed"})
        assert paid.status_code == 200
    assert [c.seen_status for c in receiver.calls] == ["pending", "completed"]


def test_mismatch_overpays_and_is_paid(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, sim_secret: str
) -> None:
    txn_id = create(plisio, receiver)
    sim.post("/sim/pay", json={"txn_id": txn_id, "status": "mismatch", "amount": "12.5"})
    pending, final = verified(receiver, sim_secret)
    assert (pending["status"], final["status"]) == ("pending", "mismatch")
    assert Decimal(final["amount"]) == Decimal("12.5")
    assert Decimal(final["pending_amount"]) == Decimal("-2.25")
    assert plisio.get_operation(txn_id).outcome is PaymentOutcome.PAID


def test_expired_underpays(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, sim_secret: str
) -> None:
    txn_id = create(plisio, receiver)
    sim.post("/sim/pay", json={"txn_id": txn_id, "status": "expired"})
    pending, final = verified(receiver, sim_secret)
    assert (pending["status"], final["status"]) == ("pending", "expired")
    assert Decimal("0") < Decimal(final["amount"]) < Decimal(final["invoice_total_sum"])
    assert plisio.get_operation(txn_id).outcome is PaymentOutcome.UNPAID


@pytest.mark.parametrize("status", ["cancelled", "error"])
def test_unpaid_endings_send_one_callback(
    plisio: PlisioClient,
    sim: httpx.Client,
    receiver: Receiver,
    sim_secret: str,
    status: str,
) -> None:
    create(plisio, receiver)
    sim.post("/sim/pay", json={"order_number": "order-1", "status": status})
    (final,) = verified(receiver, sim_secret)
    assert final["status"] == status and Decimal(final["amount"]) == 0


def test_a_failed_delivery_is_not_retried(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver
) -> None:
    receiver.status_code = 500
    create(plisio, receiver)
    answer = sim.post("/sim/pay", json={"order_number": "order-1", "status": "completed"})
    assert [c["response"]["status_code"] for c in answer.json()["callbacks"]] == [500, 500]
    assert len(receiver.calls) == 2
    (invoice,) = sim.get("/sim/invoices").json()["invoices"]
    assert invoice["status"] == "completed" and len(invoice["callbacks"]) == 2


def test_an_unreachable_callback_is_recorded(plisio: PlisioClient, sim: httpx.Client) -> None:
    plisio.create_invoice(
        order_number="order-1",
        order_name="x",
        source_amount=Decimal("1"),
        source_currency="USD",
        callback_url="http://127.0.0.1:9/cb?json=true",
        success_url=None,
        fail_url=None,
        expire_min=None,
    )
    answer = sim.post("/sim/pay", json={"order_number": "order-1", "status": "cancelled"})
    assert "error" in answer.json()["callbacks"][0]["response"]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"order_number": "nope", "status": "completed"}, 404),
        ({"order_number": "order-1", "status": "paid"}, 422),
        ({"order_number": "order-1", "status": "mismatch", "amount": "10.25"}, 422),
        ({"order_number": "order-1", "status": "expired", "amount": "11"}, 422),
        ({"order_number": "order-1", "status": "completed", "amount": "ten"}, 422),
    ],
)
def test_sim_pay_refuses_what_cannot_happen(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, body: dict, code: int
) -> None:
    create(plisio, receiver)
    assert sim.post("/sim/pay", json=body).status_code == code
    assert receiver.calls == []


def test_a_closed_invoice_cannot_be_paid_again(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver
) -> None:
    create(plisio, receiver)
    paid = sim.post("/sim/pay", json={"order_number": "order-1", "status": "completed"})
    assert paid.status_code == 200
    again = sim.post("/sim/pay", json={"order_number": "order-1", "status": "completed"})
    assert again.status_code == 409
    assert len(receiver.calls) == 2


def test_non_ascii_text_travels_raw_and_verifies(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, sim_secret: str
) -> None:
    create(plisio, receiver, order_name="100 crédits — 視頻")
    sim.post("/sim/pay", json={"order_number": "order-1", "status": "cancelled"})
    (call,) = receiver.calls
    assert "100 crédits — 視頻".encode() in call.body and b"\\u" not in call.body
    assert verify_callback(call.body, sim_secret)["order_name"] == "100 crédits — 視頻"


def test_without_json_true_callbacks_are_php_serialize_forms(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, api_url: str, sim_secret: str
) -> None:
    """What real Plisio does when json=true is missing (our client refuses to ask for it)."""
    params = {
        "api_key": sim_secret,
        "order_number": "order-1",
        "order_name": "100 crédits",
        "source_currency": "USD",
        "source_amount": "10.25",
        "callback_url": f"{receiver.url}/cb",
    }
    assert httpx.get(f"{api_url}/invoices/new", params=params).status_code == 200
    sim.post("/sim/pay", json={"order_number": "order-1", "status": "cancelled"})
    (call,) = receiver.calls
    assert call.headers["Content-Type"] == "application/x-www-form-urlencoded"
    fields = dict(parse_qsl(call.body.decode(), keep_blank_values=True))
    got = fields.pop("verify_hash")
    ordered = dict(sorted(fields.items()))
    serialized = (
        f"a:{len(ordered)}:{{"
        + "".join(
            f's:{len(k.encode())}:"{k}";s:{len(v.encode())}:"{v}";' for k, v in ordered.items()
        )
        + "}"
    )
    expected = hmac.new(sim_secret.encode(), serialized.encode(), hashlib.sha1).hexdigest()
    assert got == expected


def test_the_invoice_page_can_be_paid_by_a_person(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver, sim_secret: str
) -> None:
    back = "https://izgens.test/credits?paid=1&x=2"
    txn_id = create(plisio, receiver, order_name="<b>100</b> credits", success_url=back)
    invoice_url = f"{sim.base_url}".rstrip("/") + f"/invoice/{txn_id}"
    page = sim.get(invoice_url)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    for text in ("10.250000 USDT_TRX", "10.25 USD", ">Pay<", ">Overpay<", ">Cancel<"):
        assert text in page.text
    assert ">Underpay and let expire<" in page.text
    assert "<b>100</b>" not in page.text  # escaped
    action = re.search(r'<form method="post" action="([^"]+)"', page.text)
    assert action is not None
    target = httpx.URL(invoice_url).join(action.group(1))
    answer = sim.post(target, data={"status": "completed"})
    assert answer.status_code == 303 and answer.headers["location"] == invoice_url
    assert [f["status"] for f in verified(receiver, sim_secret)] == ["pending", "completed"]
    after = sim.get(invoice_url).text
    assert "closed" in after and ">Pay<" not in after
    assert f'href="{html.escape(back)}"' in after


def test_the_api_refuses_a_wrong_key_with_the_error_envelope(api_url: str) -> None:
    for path in ("/invoices/new", "/operations/abc", "/operations"):
        answer = httpx.get(f"{api_url}{path}", params={"api_key": "wrong"})
        assert answer.status_code == 401
        assert answer.json()["status"] == "error"
        assert set(answer.json()["data"]) == {"name", "message", "code"}


def test_operations_listing_has_plisio_shape(
    plisio: PlisioClient, receiver: Receiver, api_url: str, sim_secret: str
) -> None:
    create(plisio, receiver)
    answer = httpx.get(
        f"{api_url}/operations", params={"api_key": sim_secret, "search": "order-1"}
    ).json()
    assert answer["status"] == "success"
    assert set(answer["data"]) == {"operations", "_links", "_meta"}
    assert sim_secret not in json.dumps(answer)
    (op,) = answer["data"]["operations"]
    assert op["type"] == "invoice" and op["params"]["order_number"] == "order-1"


def test_concurrent_creation_is_safe(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver
) -> None:
    with ThreadPoolExecutor(8) as pool:
        distinct = list(pool.map(lambda i: create(plisio, receiver, f"order-{i}"), range(16)))
        same = list(pool.map(lambda _: create(plisio, receiver, "order-same"), range(8)))
    assert len(set(distinct)) == 16
    assert len(set(same)) == 1
    assert len(sim.get("/sim/invoices").json()["invoices"]) == 17


def test_reset_forgets_everything(
    plisio: PlisioClient, sim: httpx.Client, receiver: Receiver
) -> None:
    create(plisio, receiver)
    assert sim.post("/sim/reset").json() == {"ok": True}
    assert sim.get("/sim/invoices").json() == {"invoices": []}


def test_notify_on_create_sends_a_new_callback(
    receiver: Receiver, server_thread: Callable[[Any], ServerThread]
) -> None:
    secret = "notify-on-create-secret"
    with server_thread(create_app(SimConfig(secret_key=secret, notify_on_create=True))) as srv:
        with PlisioClient(f"{srv.url}/api/v1", secret, backoff=0) as client:
            create(client, receiver)
            deadline = time.monotonic() + 5
            while not receiver.calls and time.monotonic() < deadline:
                time.sleep(0.01)
    (new,) = verified(receiver, secret)
    assert new["status"] == "new" and Decimal(new["amount"]) == 0
