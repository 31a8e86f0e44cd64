"""The `account` function: the caller's profile, age confirmation and credit ledger.

Thin by design: parse, authorize, call the library, shape the response.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from pydantic import BaseModel, ConfigDict, field_validator

from izgens import accounts, credits
from izgens.http import CurrentUser, Db, create_app, lambda_handler
from izgens.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

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


Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200)]


@app.get("/me", response_model=accounts.Account)
def get_me(user: CurrentUser, db: Db) -> accounts.Account:
    return accounts.get_account(db, user.id)


@app.post("/me/age-confirmation", response_model=accounts.Account)
def confirm_age(body: AgeConfirmation, user: CurrentUser, db: Db) -> accounts.Account:
    return accounts.confirm_age(db, user.id)


@app.get("/ledger", response_model=Page[credits.LedgerEntry])
def get_ledger(
    user: CurrentUser, db: Db, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[credits.LedgerEntry]:
    return credits.ledger_page(db, user.id, limit=limit, cursor=cursor)


handler = lambda_handler(app)
