from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from izgens_local.devserver import load_function
from tests.security.support import Stack

CONFIG = {
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "401", "402", "403", "404", "409", "422", "429"]
        }
    },
}

schemas = {
    name: schemathesis.openapi.from_asgi(
        "/openapi.json", load_function(name).app, config=SchemathesisConfig.from_dict(CONFIG)
    )
    for name in ("generate", "status", "account", "plisio_webhook", "privacy_export")
}


@schemathesis.pytest.parametrize(**schemas)
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_valid(case, stack: Stack) -> None:
    case.call_and_validate(headers=stack.auth)
