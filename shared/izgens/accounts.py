"""Profiles as the account function shows them."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel

from izgens.db import Database
from izgens.errors import Unauthenticated

__all__ = ["Account", "confirm_age", "get_account", "update_profile"]


class Account(BaseModel):
    user_id: uuid.UUID
    email: str | None
    balance: int
    age_confirmed: bool
    age_confirmed_at: datetime | None = None
    display_name: str | None = None
    blocked: bool = False
    deletion_scheduled_for: datetime | None


def _account(row: dict | None) -> Account:
    value = row["account"] if row else None
    if value is None:
        # the token is valid but its user was deleted: never re-create the account
        raise Unauthenticated("this account no longer exists")
    return Account.model_validate(value)


def get_account(db: Database, user_id: uuid.UUID) -> Account:
    """The caller's account, creating the profile on first sight of a (still existing) user."""
    return _account(db.one("select izgens.account(%s) as account", (user_id,)))


def confirm_age(db: Database, user_id: uuid.UUID) -> Account:
    return _account(db.one("select izgens.confirm_age(%s) as account", (user_id,)))


def update_profile(db: Database, user_id: uuid.UUID, fields: dict[str, object]) -> Account:
    """Rectification: only the fields given change; an empty display name clears it."""
    import json

    return _account(
        db.one("select izgens.update_profile(%s, %s) as account", (user_id, json.dumps(fields)))
    )
