"""Property-based fuzzing of the two raw-body routes, over real HTTP through the dev server:
arbitrary bytes, JSON of arbitrary depth and type (non-finite numbers included), under
every content type, unsigned and correctly signed (Plisio), with a forged and a valid
token (BytePlus). Never a 5xx, never an error-level log line; an error is problem+json;
nothing is stored, credited or refunded for a refused body.

CI runs a bounded, repeatable number of examples; `make fuzz` many more, seeded anew.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from izgens.generations import callback_token
from izgens.logs import configure_logging
from tests.payments.support import callback_body, new_purchase, sign
from tests.security.support import SECRETS, Stack
from tests.support.logs import LogCapture, capture_logs
from tests.support.problems import assert_problem
from tests.support.rows import row_counts

PLISIO = "/plisio_webhook/plisio/callback?json=true"
BYTEPLUS = "/status/callbacks/byteplus"

EXAMPLES = int(__import__("os").environ.get("IZGENS_FUZZ_EXAMPLES", "60"))
LONG_RUN = "IZGENS_FUZZ_EXAMPLES" in __import__("os").environ

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not LONG_RUN,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# -- what is sent ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@st.composite
def deep(draw: st.DrawFn) -> bytes:
    """Nesting of any depth (past what the body limit allows), arrays and objects mixed,
    closed or not."""
    depth = draw(st.integers(min_value=1, max_value=20_000))
    opener = draw(st.sampled_from([b"[", b'{"a":', b'[{"a":']))
    closer = {b"[": b"]", b'{"a":': b"}", b'[{"a":': b"}]"}[opener]
    closed = draw(st.booleans())
    return opener * depth + b"1" + (closer * depth if closed else b"")


def _dump(document: Any) -> bytes:
    return json.dumps(document, allow_nan=True).encode("utf-8", "surrogatepass")


bodies = st.one_of(
    st.binary(max_size=512),
    deep(),
    documents.map(_dump),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"", b"NaN", b"-Infinity", b"1e400", b"[1e400]", b'{"id": NaN}']),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/x-www-form-urlencoded", "", "*/*; x="]
)


# -- fixtures and checks -----------------------------------------------------------------------


@pytest.fixture
def error_log() -> Iterator[LogCapture]:
    configure_logging()
    with capture_logs(level=logging.ERROR) as errors:
        yield errors


def _post(stack: Stack, url: str, body: bytes, content_type: str) -> httpx.Response:
    headers = {"Content-Type": content_type} if content_type else {}
    return stack.api.post(url, content=body, headers=headers)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.status_code, response.text)
    if response.status_code >= 400:
        assert_problem(response, response.status_code)


def _money(stack: Stack) -> dict[str, int]:
    return row_counts(
        stack.db,
        events="public.payment_events",
        ledger="public.credit_ledger",
        settled="public.purchases where status <> 'pending'",
    )


# -- Plisio ------------------------------------------------------------------------------------


@FUZZ
@given(body=bodies, content_type=content_types)
def test_any_unsigned_body_is_refused_on_the_plisio_webhook(
    stack: Stack, error_log: LogCapture, body: bytes, content_type: str
) -> None:
    before = _money(stack)
    response = _post(stack, PLISIO, body, content_type)
    _check(response)
    assert response.status_code in (413, 422), response.text  # 413: over the body limit
    assert _money(stack) == before
    assert error_log.errors() == []


@st.composite
def signed_callbacks(draw: st.DrawFn) -> dict[str, Any]:
    """A real callback's fields with any of them replaced by any JSON (text jsonb cannot
    hold, non-finite numbers, nesting), plus new fields; signed with the secret."""
    fields = {k: v for k, v in json.loads(callback_body("ORDER", "completed")).items()}
    del fields["verify_hash"]
    for key in draw(st.lists(st.sampled_from(sorted(fields)), max_size=4, unique=True)):
        fields[key] = draw(documents)
    fields.update(draw(st.dictionaries(st.text(max_size=8), documents, max_size=3)))
    fields.pop("verify_hash", None)
    return fields


@FUZZ
@given(fields=signed_callbacks(), real_order=st.booleans())
def test_any_signed_callback_is_answered_without_a_5xx(
    stack: Stack, error_log: LogCapture, fields: dict[str, Any], real_order: bool
) -> None:
    """Signed by the secret holder, any content: 200 and stored, or 422 (nested too deep,
    not an object), never a 5xx and never a credit for a body that does not fit."""
    if real_order:
        fields["order_number"] = str(new_purchase(stack.db, stack.user, per_minute=1_000_000))
    fields["verify_hash"] = sign(fields)
    before = _money(stack)
    response = _post(stack, PLISIO, _dump(fields), "application/json")
    _check(response)
    after = _money(stack)
    if response.status_code == 200:
        assert after["events"] in (before["events"], before["events"] + 1)
        if not _fits(fields):
            assert after["ledger"] == before["ledger"]  # nothing credited
    else:
        assert after == before
    assert error_log.errors() == []


def _fits(fields: dict[str, Any]) -> bool:
    """The callback could honestly credit the starter pack."""
    return (
        fields.get("status") in ("completed", "mismatch")
        and fields.get("source_currency") == "USD"
        and fields.get("source_amount") == "5.00"
    )


# -- BytePlus ----------------------------------------------------------------------------------


@pytest.fixture
def in_flight(stack: Stack) -> dict[str, Any]:
    """A generation the provider works on for a minute (its own callbacks dropped)."""
    row = stack.running_generation()
    return {"id": row["id"], "cost": row["cost"]}


@FUZZ
@given(body=bodies, content_type=content_types, forged=st.booleans())
def test_any_body_on_the_provider_callback_is_answered_without_a_5xx(
    stack: Stack,
    error_log: LogCapture,
    in_flight: dict[str, Any],
    body: bytes,
    content_type: str,
    forged: bool,
) -> None:
    key = "not-the-signing-key-0000000000000000" if forged else SECRETS["CALLBACK_SIGNING_KEY"]
    url = f"{BYTEPLUS}?token={callback_token(in_flight['id'], key)}"
    response = _post(stack, url, body, content_type)
    _check(response)
    if forged:  # refused before the body is read (or, declared too long, before the route)
        assert response.status_code in (401, 413), response.text
    entries = stack.db.all(
        "select reason, delta from public.credit_ledger where ref = %s", (str(in_flight["id"]),)
    )
    assert entries == [{"reason": "generation", "delta": -in_flight["cost"]}]  # no refund
    assert error_log.errors() == []


def _nans(document: Any) -> list[float]:
    """Every NaN anywhere in a generated document (where it sits depends on Hypothesis's
    version, that it is sent does not)."""
    if isinstance(document, float):
        return [document] if math.isnan(document) else []
    children = document.values() if isinstance(document, dict) else document
    if isinstance(document, list | dict):
        return [n for child in children for n in _nans(child)]
    return []


def test_the_strategies_reach_what_they_are_for() -> None:
    """The generators do produce the hostile shapes (a fuzz run that never sent NaN or a
    deep body would pass for nothing)."""
    from hypothesis import find

    # the same examples every run, as for the fuzz tests themselves
    search = settings(max_examples=5000, derandomize=True, database=None)
    assert find(deep(), lambda b: len(b) > 20_000, settings=search)
    assert find(documents, lambda d: any(_nans(d)), settings=search)
    assert find(
        documents, lambda d: isinstance(d, list) and d and isinstance(d[0], list), settings=search
    )
    assert find(
        signed_callbacks(), lambda f: any(isinstance(v, dict) for v in f.values()), settings=search
    )
