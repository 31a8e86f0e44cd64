"""Property-based fuzzing of every HTTP function from its own OpenAPI document.

Each function's ASGI app runs in-process (the real edge: request ids, body limit, error
table) against the real stack (Postgres, moto S3, the Seedance and Plisio simulators).
With a valid token (an adult user with credits) and with forged ones, schemathesis checks
every response: never a 5xx, a documented status, the documented schema and content type,
schema-violating input refused (ST201) and valid input not refused for its shape (ST202).
Our own checks add: every error is problem+json with its code, every response carries
the security headers, every 429 says when to retry.

CI runs a bounded number of examples per route; `make fuzz` runs many more
(IZGENS_FUZZ_EXAMPLES).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from izgens.http import SECURITY_HEADERS
from izgens_local.devserver import HTTP_FUNCTIONS, load_function
from tests.security.support import RATE_LIMITS, Stack
from tests.support.tokens import forged_tokens

LONG_RUN = "IZGENS_FUZZ_EXAMPLES" in os.environ  # `make fuzz`
MAX_EXAMPLES = int(os.environ.get("IZGENS_FUZZ_EXAMPLES", "12"))

CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                # A schema-valid request may still break a rule the schema cannot state: a
                # catalog combination (model × resolution × duration), an upload type, a
                # pack that does not exist, an invalid signature. Those are 4xx with a
                # reason; what must never happen is a 5xx (checked separately).
                "expected-statuses": ["2xx", "401", "402", "403", "404", "409", "422", "429"]
            }
        }
    }
)

SCHEMAS = {
    name: schemathesis.openapi.from_asgi("/openapi.json", load_function(name).app, config=CONFIG)
    for name in HTTP_FUNCTIONS
}

# Given to schemathesis as the schemas' auth (not as extra headers), so its negative cases
# that drop the Authorization header on purpose really go without it. Cases are generated
# before the test's user exists: they carry a placeholder the test swaps for its token.
PLACEHOLDER = "Bearer izgens-fuzz-token-placeholder"


class BearerToken:
    def get(self, case: Any, context: Any) -> str:
        return PLACEHOLDER

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": data}


for _schema in SCHEMAS.values():
    _schema.auth(refresh_interval=None)(BearerToken)


def _with_token(case: Any, token: Callable[[], str]) -> None:
    if case.headers and case.headers.get("Authorization") == PLACEHOLDER:
        case.headers["Authorization"] = f"Bearer {token()}"


FUZZ_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not LONG_RUN,  # CI runs are repeatable; `make fuzz` explores anew
    # one database and user serve all examples of a route (a fixture per example would
    # cost more than the request)
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)


# ---------------------------------------------------------------------------------------------
# Our checks, on top of schemathesis' own


def problem_json_errors(ctx: Any, response: Any, case: Any) -> None:
    """Every error is RFC 9457 problem+json with the status and a stable code."""
    if response.status_code < 400:
        return
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.startswith("application/problem+json"), (
        f"{response.status_code} answered as {content_type!r}"
    )
    body = response.json()
    assert body.get("status") == response.status_code, body
    assert body.get("code") and body.get("title") and body.get("type"), body


def security_headers(ctx: Any, response: Any, case: Any) -> None:
    for name, value in SECURITY_HEADERS:
        given = response.headers.get(name.decode(), [None])[0]
        assert given == value.decode(), f"{name.decode()}: {given!r}"
    assert response.headers.get("x-request-id"), "no X-Request-Id"


def retry_after_on_429(ctx: Any, response: Any, case: Any) -> None:
    if response.status_code == 429:
        retry = response.headers.get("retry-after", [""])[0]
        assert retry.isdigit() and int(retry) >= 1, f"Retry-After {retry!r}"


OUR_CHECKS = [problem_json_errors, security_headers, retry_after_on_429]


# ---------------------------------------------------------------------------------------------


@pytest.fixture
def fuzz_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """The stack with limits out of the way, so fuzzing reaches past them."""
    from izgens.config import reset_settings

    for name in RATE_LIMITS:  # the auth-failure one too: schemathesis sends bad tokens
        monkeypatch.setenv(name, "100000")
    reset_settings()
    yield stack


@schemathesis.pytest.parametrize(**SCHEMAS)
@FUZZ_SETTINGS
def test_every_route_with_a_valid_token(case: Any, fuzz_stack: Stack) -> None:
    _with_token(case, lambda: fuzz_stack.token)
    case.call_and_validate(additional_checks=OUR_CHECKS)


_FORGED: dict[str, Iterator[str]] = {}


@schemathesis.pytest.parametrize(**SCHEMAS)
@FUZZ_SETTINGS
def test_every_route_with_an_invalid_token(case: Any, stack: Stack) -> None:
    """Forged, expired, wrong-audience… tokens in turn: never in, never a 5xx; 401, or 429
    once the address failed too often (or what the edge answers before authentication:
    400 malformed JSON, 422 text no layer can store, 404, 405, 413)."""
    if stack.token not in _FORGED:  # one rotation per test (its user and database)
        _FORGED.clear()
        _FORGED[stack.token] = itertools.cycle(forged_tokens(stack.dev, stack.user).values())
    _with_token(case, lambda: next(_FORGED[stack.token]))
    response = case.call_and_validate(additional_checks=OUR_CHECKS)
    if case.operation.definition.raw.get("security"):
        if response.status_code == 422:  # a body no layer can store, refused while read
            assert "NUL" in response.json()["detail"], response.text
        else:
            assert response.status_code in (400, 401, 404, 405, 413, 429), response.status_code
