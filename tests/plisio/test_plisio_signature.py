"""verify_hash: known answers, an independent signer, and every way a callback must be refused.

The reference signer below builds the signed message by hand (no json module), so a bug in
`sign_callback`'s use of json.dumps cannot hide behind the same bug in the test.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from izgens.errors import InvalidRequest
from izgens.plisio import (
    InvalidSignature,
    PaymentOutcome,
    payment_outcome,
    sign_callback,
    verify_callback,
)

DEMO_SECRET = "demo_SECRET_do_not_use_0123456789"

# reference/plisio.md §4.4: the exact 571 bytes Plisio hashes for the §3.1 example
DEMO_MESSAGE = (
    '{"amount":"10.300000","comment":"Invoice details: https://plisio.net/account/transactions/'
    '65f0c0ffee00000000001042","confirmations":"20","currency":"USDT_TRX",'
    '"invoice_commission":"0.050000","invoice_sum":"10.250000","invoice_total_sum":"10.300000",'
    '"ipn_type":"invoice","merchant":"Demo Credits Shop","merchant_id":"65f0aaaaaaaaaaaaaaaa0001",'
    '"order_name":"100 credits","order_number":"1042","pending_amount":"0.000000",'
    '"psys_cid":"USDT_TRX","source_amount":"10.25","source_currency":"USD",'
    '"source_rate":"1.000000","status":"completed","txn_id":"65f0c0ffee00000000001042"}'
)
DEMO_HASH = "f7d0eef1febaea1fb0a97b38890519abc1e91f39"

# Plisio/nodejs-api-client test/ResponseValidator.test.ts: the official known-answer vector
NODE_SECRET = "8LEfCIhEwSApKj02NM0jI-1urGthaqprSArbfzTAcvAIpMQu_jGTkXEyE3TE26Ip"
NODE_FIELDS = [
    ("amount", "15.300000"),
    (
        "comment",
        "Invoice details: https://plisio.loc/account/transactions/61b19fd3f609ba61f4282547",
    ),
    ("confirmations", "0"),
    ("currency", "USDT"),
    ("ipn_type", "invoice"),
    ("merchant", "Test shop"),
    ("merchant_id", "5d09fcd84f1e66138d706ed8"),
    ("order_name", "test USDT"),
    ("order_number", "21120906"),
    ("psys_cid", "USDT"),
    ("source_amount", "15.00"),
    ("source_currency", "USD"),
    ("source_rate", "1.000000"),
    ("status", "completed"),
    ("txn_id", "61b19fd3f609ba61f4282547"),
]
NODE_HASH = "6c53ff3472d694bfa13851ef266ec67389d25e2f"


def _quote(text: str, *, ascii_only: bool = False) -> str:
    """A JSON string literal built by hand: escape quote, backslash and control characters;
    leave "/" alone; keep non-ASCII raw unless asked (then \\uXXXX, with surrogate pairs)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif code < 0x20:
            out.append(f"\\u{code:04x}")
        elif code > 0x7F and ascii_only:
            if code > 0xFFFF:
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def message(pairs: list[tuple[str, str]], *, ascii_only: bool = False) -> str:
    inner = ",".join(
        f"{_quote(k, ascii_only=ascii_only)}:{_quote(v, ascii_only=ascii_only)}" for k, v in pairs
    )
    return "{" + inner + "}"


def reference_sign(pairs: list[tuple[str, str]], secret: str, *, ascii_only: bool = False) -> str:
    msg = message(pairs, ascii_only=ascii_only).encode("utf-8")
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha1).hexdigest()


def body(pairs: list[tuple[str, str]], verify_hash: str, *, escape_slashes: bool = False) -> bytes:
    """A callback body in transit: the fields in the given order, verify_hash last."""
    text = message([*pairs, ("verify_hash", verify_hash)])
    if escape_slashes:  # PHP's default json_encode writes \/ on the wire
        text = text.replace("/", "\\/")
    return text.encode("utf-8")


DEMO_PAIRS = [
    ("amount", "10.300000"),
    (
        "comment",
        "Invoice details: https://plisio.net/account/transactions/65f0c0ffee00000000001042",
    ),
    ("confirmations", "20"),
    ("currency", "USDT_TRX"),
    ("invoice_commission", "0.050000"),
    ("invoice_sum", "10.250000"),
    ("invoice_total_sum", "10.300000"),
    ("ipn_type", "invoice"),
    ("merchant", "Demo Credits Shop"),
    ("merchant_id", "65f0aaaaaaaaaaaaaaaa0001"),
    ("order_name", "100 credits"),
    ("order_number", "1042"),
    ("pending_amount", "0.000000"),
    ("psys_cid", "USDT_TRX"),
    ("source_amount", "10.25"),
    ("source_currency", "USD"),
    ("source_rate", "1.000000"),
    ("status", "completed"),
    ("txn_id", "65f0c0ffee00000000001042"),
]


def with_field(pairs: list[tuple[str, str]], key: str, value: str) -> list[tuple[str, str]]:
    return [(k, value if k == key else v) for k, v in pairs]


# --- known answers ---------------------------------------------------------------------


def test_reference_signer_reproduces_the_documented_message() -> None:
    assert message(DEMO_PAIRS) == DEMO_MESSAGE
    assert len(DEMO_MESSAGE.encode()) == 571
    assert reference_sign(DEMO_PAIRS, DEMO_SECRET) == DEMO_HASH


def test_worked_example_f7d0eef1_verifies_and_signs() -> None:
    raw = body(DEMO_PAIRS, DEMO_HASH)
    assert verify_callback(raw, DEMO_SECRET) == dict(DEMO_PAIRS)
    assert sign_callback(dict(DEMO_PAIRS), DEMO_SECRET) == DEMO_HASH


def test_official_node_kat_6c53ff34_verifies_and_signs() -> None:
    assert reference_sign(NODE_FIELDS, NODE_SECRET) == NODE_HASH
    assert verify_callback(body(NODE_FIELDS, NODE_HASH), NODE_SECRET) == dict(NODE_FIELDS)
    assert sign_callback(dict(NODE_FIELDS), NODE_SECRET) == NODE_HASH


def test_non_ascii_documented_vectors() -> None:
    """§4.4: `100 crédits` signs to a05aa37e… raw and 25741b31… escaped; both are accepted,
    and our canonical signature is the raw UTF-8 one."""
    pairs = with_field(DEMO_PAIRS, "order_name", "100 crédits")
    assert reference_sign(pairs, DEMO_SECRET) == "a05aa37e829a836852659eb92d79185ca1d359fe"
    escaped = reference_sign(pairs, DEMO_SECRET, ascii_only=True)
    assert escaped == "25741b31dde464dc4e7d763987b1ba56ba1cf165"
    assert sign_callback(dict(pairs), DEMO_SECRET) == "a05aa37e829a836852659eb92d79185ca1d359fe"
    for digest in ("a05aa37e829a836852659eb92d79185ca1d359fe", escaped):
        assert verify_callback(body(pairs, digest), DEMO_SECRET)["order_name"] == "100 crédits"


# --- independent vectors -----------------------------------------------------------------

SECRET = "test-secret-ñ-with-unicode"

TRICKY = [
    ("amount", "0.000000"),
    ("comment", 'Invoice "details": https://x.example/a/b?c=d&e=f\\g — ünïcödé 💸'),
    ("confirmations", "0"),
    ("merchant", "Crédits & Co / Ltd"),
    ("order_name", "100 кредитов"),
    ("order_number", "0042"),
    ("source_amount", "10.00"),
    ("status", "pending"),
    ("txn_id", "65f0c0ffee00000000001042"),
]


@pytest.mark.parametrize("ascii_only", [False, True])
def test_tricky_values_verify_with_an_independently_built_hash(ascii_only: bool) -> None:
    digest = reference_sign(TRICKY, SECRET, ascii_only=ascii_only)
    assert verify_callback(body(TRICKY, digest), SECRET) == dict(TRICKY)


def test_sign_callback_matches_the_independent_signer_on_tricky_values() -> None:
    assert sign_callback(dict(reversed(TRICKY)), SECRET) == reference_sign(TRICKY, SECRET)
    with_hash = {**dict(TRICKY), "verify_hash": "0" * 40}
    assert sign_callback(with_hash, SECRET) == reference_sign(TRICKY, SECRET)


def test_numbers_as_strings_keep_their_exact_text() -> None:
    digest = reference_sign(TRICKY, SECRET)
    assert verify_callback(body(TRICKY, digest), SECRET)["source_amount"] == "10.00"
    for reformatted in ("10.0", "10", "10.000000"):
        changed = with_field(TRICKY, "source_amount", reformatted)
        with pytest.raises(InvalidSignature):
            verify_callback(body(changed, digest), SECRET)


def test_escaped_slashes_on_the_wire_still_verify() -> None:
    digest = reference_sign(DEMO_PAIRS, DEMO_SECRET)
    raw = body(DEMO_PAIRS, digest, escape_slashes=True)
    assert b"https:\\/\\/plisio.net" in raw
    assert verify_callback(raw, DEMO_SECRET)["comment"].startswith("Invoice details: https://")


def test_received_order_is_accepted_like_the_official_python_sdk() -> None:
    shuffled = list(reversed(DEMO_PAIRS))
    digest = reference_sign(shuffled, DEMO_SECRET, ascii_only=True)
    assert verify_callback(body(shuffled, digest), DEMO_SECRET) == dict(DEMO_PAIRS)


def test_uppercase_hex_is_accepted() -> None:
    assert verify_callback(body(DEMO_PAIRS, DEMO_HASH.upper()), DEMO_SECRET)


# --- refusals ----------------------------------------------------------------------------


def test_a_tampered_field_is_refused() -> None:
    tampered = with_field(DEMO_PAIRS, "status", "mismatch")
    with pytest.raises(InvalidSignature):
        verify_callback(body(tampered, DEMO_HASH), DEMO_SECRET)


def test_an_added_field_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(body([*DEMO_PAIRS, ("credits", "100000")], DEMO_HASH), DEMO_SECRET)


def test_a_missing_hash_is_refused() -> None:
    with pytest.raises(InvalidSignature, match="missing"):
        verify_callback(message(DEMO_PAIRS).encode(), DEMO_SECRET)


def test_the_wrong_key_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(body(DEMO_PAIRS, DEMO_HASH), "another-secret")


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(body(DEMO_PAIRS, DEMO_HASH), "")


def test_the_hash_of_another_body_is_refused() -> None:
    other = reference_sign(NODE_FIELDS, DEMO_SECRET)
    with pytest.raises(InvalidSignature):
        verify_callback(body(DEMO_PAIRS, other), DEMO_SECRET)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"not json",
        b"amount=10&verify_hash=" + DEMO_HASH.encode(),
        b'{"amount": "10",',
        b"[1, 2]",
        b'"just a string"',
        b"null",
        b"\xff\xfe\x00garbage",
    ],
)
def test_bodies_that_are_not_a_json_object_are_refused(raw: bytes) -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(raw, DEMO_SECRET)


@pytest.mark.parametrize(
    "bad_hash",
    ["", "xyz", DEMO_HASH[:-1], DEMO_HASH + "0", "g" * 40, "é" * 40, "0" * 40],
)
def test_garbled_hashes_are_refused(bad_hash: str) -> None:
    with pytest.raises(InvalidSignature):
        verify_callback(body(DEMO_PAIRS, bad_hash), DEMO_SECRET)


def test_a_hash_that_is_not_a_string_is_refused() -> None:
    raw = DEMO_MESSAGE[:-1].encode() + b',"verify_hash":12345}'
    with pytest.raises(InvalidSignature):
        verify_callback(raw, DEMO_SECRET)


def test_invalid_signature_is_an_invalid_request_with_its_own_code() -> None:
    with pytest.raises(InvalidRequest) as caught:
        verify_callback(b"{}", DEMO_SECRET)
    assert isinstance(caught.value, InvalidSignature)
    assert caught.value.code == "invalid_signature"


# --- statuses ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", PaymentOutcome.PAID),
        ("mismatch", PaymentOutcome.PAID),
        ("new", PaymentOutcome.OPEN),
        ("pending", PaymentOutcome.OPEN),
        ("pending internal", PaymentOutcome.OPEN),
        ("expired", PaymentOutcome.UNPAID),
        ("cancelled", PaymentOutcome.UNPAID),
        ("error", PaymentOutcome.UNPAID),
        ("cancelled duplicate", PaymentOutcome.UNPAID),
        ("_111", PaymentOutcome.UNKNOWN),
        ("", PaymentOutcome.UNKNOWN),
        (None, PaymentOutcome.UNKNOWN),
        ("Completed", PaymentOutcome.UNKNOWN),
    ],
)
def test_payment_outcome_follows_the_reference_table(
    status: str | None, outcome: PaymentOutcome
) -> None:
    assert payment_outcome(status) is outcome
