"""The `account` function: the caller's profile, age confirmation, credit ledger, and buying
credits (packs, checkout, purchases).

Thin by design: parse, authorize, call the library, shape the response.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, field_validator

from izgens import accounts, credits, payments
from izgens.http import (
    CurrentUser,
    Db,
    blocking,
    client_ip,
    create_app,
    lambda_handler,
    problem_responses,
)
from izgens.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

__all__ = ["app", "handler"]

app = create_app("account", title="izgens account", description="Profile, age gate, credits.")


class AgeConfirmation(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    over_18: Literal[True]

    @field_validator("over_18", mode="before")
    @classmethod
    def _exactly_true(cls, value: object) -> object:
        if value is not True:  # Literal[True] alone would take 1 and 1.0
            raise ValueError("must be true")
        return value


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    pack_id: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9_-]+$")


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200)]
IdempotencyKey = Annotated[str, Header(alias="Idempotency-Key", min_length=1, max_length=255)]


@app.get("/me", response_model=accounts.Account)
async def get_me(user: CurrentUser, db: Db) -> accounts.Account:
    return await blocking(accounts.get_account, db, user.id)


class ProfileUpdate(BaseModel):
    """What a user may correct that we store ourselves (docs/privacy.md); the email belongs
    to Supabase Auth and is changed there."""

    model_config = ConfigDict(extra="forbid", strict=True)

    display_name: Annotated[str, Field(max_length=80)] | None = None


@app.patch("/me", response_model=accounts.Account)
async def update_me(body: ProfileUpdate, user: CurrentUser, db: Db) -> accounts.Account:
    return await blocking(accounts.update_profile, db, user.id, body.model_dump(exclude_unset=True))


@app.post("/me/age-confirmation", response_model=accounts.Account)
async def confirm_age(body: AgeConfirmation, user: CurrentUser, db: Db) -> accounts.Account:
    return await blocking(accounts.confirm_age, db, user.id)


@app.get("/ledger", response_model=Page[credits.LedgerEntry])
async def get_ledger(
    user: CurrentUser, db: Db, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[credits.LedgerEntry]:
    return await blocking(credits.ledger_page, db, user.id, limit=limit, cursor=cursor)


@app.get("/packs", response_model=list[payments.Pack])
async def get_packs(user: CurrentUser, db: Db) -> list[payments.Pack]:
    return await blocking(payments.list_packs, db, user.id)


@app.post(
    "/checkout",
    status_code=201,
    response_model=payments.Checkout,
    responses=problem_responses(403, 409),
)
async def checkout(
    body: CheckoutRequest,
    request: Request,
    user: CurrentUser,
    db: Db,
    idempotency_key: IdempotencyKey,
) -> payments.Checkout:
    """A pending purchase and its Plisio invoice; the same Idempotency-Key again answers
    the same purchase and invoice, another pack with that key is 409."""
    return await blocking(
        payments.start_checkout,
        db,
        user_id=user.id,
        pack_id=body.pack_id,
        idempotency_key=idempotency_key,
        client_ip=client_ip(request),
    )


@app.get("/purchases", response_model=Page[payments.Purchase])
async def get_purchases(
    user: CurrentUser, db: Db, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[payments.Purchase]:
    return await blocking(payments.list_purchases, db, user.id, limit=limit, cursor=cursor)


handler = lambda_handler(app)
