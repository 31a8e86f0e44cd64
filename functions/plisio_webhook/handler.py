"""The `plisio_webhook` function: Plisio's signed payment callbacks, server to server.

The raw body is verified (`verify_hash`) before anything is written, then stored and
applied in one SQL call. Plisio may never retry, so a verified event is answered 200 once
stored, also when it is a duplicate or names an order we do not know; a bad signature is
a 4xx with nothing stored but a log line. No JWT library and no database driver is
imported until a request needs them: this function's cold start is a payment's latency.
"""

from __future__ import annotations

from fastapi import Request
from pydantic import BaseModel

from izgens.http import Db, blocking, create_app, lambda_handler

__all__ = ["Ack", "app", "handler"]

app = create_app(
    "plisio_webhook",
    title="izgens plisio_webhook",
    description="Verified Plisio payment callbacks (POST /plisio/callback?json=true).",
)


class Ack(BaseModel):
    ok: bool


@app.post("/plisio/callback", response_model=Ack)
async def plisio_callback(request: Request, db: Db) -> Ack:
    """Plisio's JSON callback; the exact bytes received are what `verify_hash` signs."""
    from izgens import payments

    raw = await request.body()
    await blocking(payments.handle_callback, db, raw)
    return Ack(ok=True)


handler = lambda_handler(app)
