"""The dev server: every HTTP function mounted under its name, plus dev-only helpers.

Dev-only routes live here and never in the functions: `/dev/users`, `/dev/credits`, the
JWKS that stands in for Supabase Auth's, and the console at `/`.
"""

from __future__ import annotations

import importlib
import importlib.util
import uuid
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from izgens import credits
from izgens.db import get_database
from izgens.http import create_app
from izgens_local.devauth import DevSigner

__all__ = ["HTTP_FUNCTIONS", "create_dev_app", "load_function"]

HTTP_FUNCTIONS = ("generate", "status", "account", "plisio_webhook", "privacy_export")


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


def create_dev_app(signer: DevSigner) -> FastAPI:
    app = create_app("dev", title="izgens dev server")

    @app.get("/auth/v1/.well-known/jwks.json", include_in_schema=False)
    def jwks() -> dict[str, Any]:
        return signer.jwks()

    @app.post("/dev/users", status_code=201)
    def create_user(body: NewUser) -> dict[str, Any]:
        db = get_database()
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

    @app.get("/health", include_in_schema=False)
    def health() -> dict[str, Any]:
        get_database().one("select 1 as ok")
        return {"ok": True, "functions": available_functions()}

    for name in available_functions():
        app.mount(f"/{name}", load_function(name).app)
    return app
