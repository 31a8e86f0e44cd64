"""Typed wrappers over the ledger's SQL functions. Python never computes a balance: every
change is one call to a function in schema `izgens` that locks, checks and writes."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from izgens.db import Database
from izgens.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor

__all__ = [
    "LedgerEntry",
    "Mismatch",
    "credit_purchase",
    "debit",
    "grant",
    "ledger_page",
    "mismatches",
]

Reason = Literal["purchase", "grant", "generation", "generation_refund", "operator_debit"]


class LedgerEntry(BaseModel):
    id: int
    delta: int
    balance_after: int
    reason: Reason
    ref: str
    note: str | None = None
    created_at: datetime


class Mismatch(BaseModel):
    user_id: uuid.UUID
    balance: int
    ledger_sum: int
    last_balance_after: int | None


def grant(
    db: Database, user_id: uuid.UUID, credits: int, ref: str, note: str | None = None
) -> LedgerEntry:
    """Add credits once per `ref` (operator grants, promotions, the dev stack)."""
    row = db.one(
        "select * from izgens.grant_credits(%s, %s, %s, %s)", (user_id, credits, ref, note)
    )
    return LedgerEntry.model_validate(row)


def debit(
    db: Database, user_id: uuid.UUID, credits: int, ref: str, note: str | None = None
) -> LedgerEntry:
    """Take credits back once per `ref` (e.g. the buyer's money was returned off-platform)."""
    row = db.one(
        "select * from izgens.debit_credits(%s, %s, %s, %s)", (user_id, credits, ref, note)
    )
    return LedgerEntry.model_validate(row)


def credit_purchase(db: Database, purchase_id: uuid.UUID) -> None:
    db.execute("select izgens.credit_purchase(%s)", (purchase_id,))


def ledger_page(
    db: Database, user_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
) -> Page[LedgerEntry]:
    """The user's ledger, newest first; `Unauthenticated` once the user is gone (purged)."""
    after = decode_cursor(cursor, (int,))
    rows = db.all(
        "select id, delta, balance_after, reason, ref, note, created_at"
        " from izgens.ledger_page(%s, %s, %s)",
        (user_id, after[0] if after else None, limit + 1),
    )
    items = [LedgerEntry.model_validate(r) for r in rows[:limit]]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page[LedgerEntry](items=items, next_cursor=next_cursor)


def mismatches(db: Database) -> list[Mismatch]:
    """Every profile whose balance disagrees with its ledger; empty when the books are right."""
    return [Mismatch.model_validate(r) for r in db.all("select * from izgens.ledger_mismatches()")]
