"""The dev server: every HTTP function mounted under its name, plus dev-only helpers.

Dev-only routes live here and never in the functions: `/dev/users`, `/dev/credits`,
`/dev/plisio/pay`, the JWKS that stands in for Supabase Auth's, and the console at `/`.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import anyio
from fastapi import FastAPI, Request, Response
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from izgens import credits
from izgens.config import get_settings
from izgens.db import get_database
from izgens.http import create_app
from izgens_local.devauth import DevSigner

__all__ = ["HTTP_FUNCTIONS", "create_dev_app", "load_function"]

HTTP_FUNCTIONS = ("generate", "status", "account", "plisio_webhook", "privacy_export")
STATIC_DIR = Path(__file__).resolve().parent / "static"


def load_function(name: str) -> Any:
    return importlib.import_module(f"izgens_functions.{name}.handler")


def available_functions() -> list[str]:
    return [n for n in HTTP_FUNCTIONS if importlib.util.find_spec(f"izgens_functions.{n}.handler")]


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)


class Grant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: uuid.UUID
    credits: int = Field(gt=0, le=10_000_000)


class PlisioPay(BaseModel):
    """`POST /dev/plisio/pay`: what the buyer does on the simulator's invoice page."""

    model_config = ConfigDict(extra="forbid")
    purchase_id: uuid.UUID
    status: Literal["completed", "mismatch", "expired", "cancelled", "error"]
    amount: Decimal | None = Field(None, ge=0, le=10**12)


def pay_in_plisio_sim(body: PlisioPay) -> Any:
    """Drive the Plisio simulator's `/sim/pay` for a purchase's invoice: it sends the
    signed callbacks (`pending` first when money arrives, then the final status) to the
    invoice's callback URL before answering."""
    import httpx

    from izgens.http import problem

    base = get_settings().plisio_base_url.rstrip("/")
    host = httpx.URL(base).host
    if host not in ("127.0.0.1", "localhost", "::1") or not base.endswith("/api/v1"):
        return problem(409, "no_simulator", "PLISIO_BASE_URL is not the Plisio simulator")
    request = {"order_number": str(body.purchase_id), "status": body.status}
    if body.amount is not None:
        request["amount"] = format(body.amount, "f")
    try:
        answer = httpx.post(base.removesuffix("/api/v1") + "/sim/pay", json=request, timeout=60)
    except httpx.HTTPError as exc:
        return problem(
            503, "simulator_unavailable", "The Plisio simulator is unreachable", str(exc)
        )
    if answer.status_code != 200:
        codes = {404: "not_found", 409: "invalid_transition", 422: "invalid_request"}
        try:
            detail = str(answer.json().get("error", ""))
        except ValueError:
            detail = answer.text[:500]
        code = codes.get(answer.status_code, "simulator_error")
        return problem(answer.status_code, code, "The Plisio simulator refused", detail)
    return answer.json()


def create_dev_app(signer: DevSigner) -> FastAPI:
    app = create_app("dev", title="izgens dev server")

    # async: answered on the event loop. A sync route would need a worker thread, and the
    # functions' token checks fetch this JWKS from worker threads: with every worker waiting
    # for it on a cold cache (40 concurrent first requests), nothing could answer it
    @app.get("/auth/v1/.well-known/jwks.json", include_in_schema=False)
    async def jwks() -> dict[str, Any]:
        return signer.jwks()

    @app.post("/dev/users", status_code=201)
    def create_user(body: NewUser, response: Response) -> dict[str, Any]:
        """Sign in as `email`: its existing user (200), else a new one (201)."""
        db = get_database()
        found = db.one(
            "select id from auth.users where lower(email) = lower(%s) order by created_at limit 1",
            (body.email,),
        )
        if found:
            user_id = found["id"]
            response.status_code = 200
        else:
            user_id = uuid.uuid4()
            db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, body.email))
        db.one("select * from izgens.ensure_profile(%s)", (user_id,))
        return {
            "user_id": str(user_id),
            "email": body.email,
            "access_token": signer.token(user_id, body.email),
        }

    @app.post("/dev/credits")
    def grant_credits(body: Grant) -> dict[str, Any]:
        entry = credits.grant(
            get_database(), body.user_id, body.credits, f"dev:{uuid.uuid4()}", "dev grant"
        )
        return {"user_id": str(body.user_id), "balance": entry.balance_after}

    @app.post("/dev/plisio/pay")
    def plisio_pay(body: PlisioPay) -> Any:
        return pay_in_plisio_sim(body)

    @app.delete("/auth/v1/admin/users/{user_id}", include_in_schema=False)
    async def admin_delete_user(user_id: str, request: Request) -> Response:
        """Supabase Auth's `DELETE /admin/users/{id}` (`auth.admin.delete_user`), with the
        gateway's API-key check in front, answering as they do (`devauth.admin_delete_user`)."""
        from izgens_local.devauth import admin_delete_user

        body = await request.body()
        return await anyio.to_thread.run_sync(
            admin_delete_user, signer, request.headers, user_id, body
        )

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        get_database().one("select 1 as ok")
        return {"ok": True, "functions": available_functions()}

    @app.get("/", include_in_schema=False)
    @app.get("/purchases/{purchase_id}", include_in_schema=False)  # Plisio's way back
    def console() -> FileResponse:
        """The dev console: a static page calling the public routes with the user's token."""
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for name in available_functions():
        app.mount(f"/{name}", load_function(name).app)
    return app
