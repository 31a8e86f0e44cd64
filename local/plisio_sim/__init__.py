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

Its parts: `state` (SimConfig, the invoices held), `invoices` (what paying does, the views),
`callbacks` (a callback's body and signature), `envelope` (answers and error codes),
`routes` (the API, the driver, the app), `pages` (the invoice page), `redact` (the key out
of the access log), `server` (`run`, `main`; `python -m izgens_local.plisio_sim`).
"""

from __future__ import annotations

from izgens_local.plisio_sim.routes import create_app
from izgens_local.plisio_sim.server import main, run
from izgens_local.plisio_sim.state import SimConfig

__all__ = ["SimConfig", "create_app", "main", "run"]
