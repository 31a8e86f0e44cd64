"""Users made straight in the database, their balance, and the books they must keep."""

from __future__ import annotations

import uuid

from izgens.db import Database

__all__ = ["assert_books_balance", "balance", "bearer", "make_user"]


def make_user(
    db: Database,
    email: str | None = None,
    *,
    credits: int = 0,
    adult: bool = True,
    profile: bool = True,
) -> uuid.UUID:
    """An auth user, as Supabase Auth leaves one after sign-up; with `profile` (the default)
    also the profile their first request makes, age confirmed when `adult`, holding
    `credits` granted once. `profile=False` is a user no function has seen yet (no age
    confirmed, no credits: both live on the profile)."""
    assert profile or not credits, "credits live on the profile"
    user_id = uuid.uuid4()
    db.execute(
        "insert into auth.users (id, email) values (%s, %s)",
        (user_id, email or f"u-{user_id.hex[:8]}@example.com"),
    )
    if not profile:
        return user_id
    db.one("select * from izgens.ensure_profile(%s)", (user_id,))
    if adult:
        db.one("select izgens.confirm_age(%s)", (user_id,))
    if credits:
        db.one(
            "select izgens.grant_credits(%s, %s, %s)", (user_id, credits, f"test:{uuid.uuid4()}")
        )
    return user_id


def balance(db: Database, user: uuid.UUID) -> int:
    row = db.one("select balance from public.profiles where user_id = %s", (user,))
    assert row is not None, f"no profile for {user}"
    return int(row["balance"])


def assert_books_balance(db: Database) -> None:
    """Every profile's balance is the sum of its ledger (izgens.ledger_mismatches)."""
    bad = db.all("select * from izgens.ledger_mismatches()")
    assert bad == [], f"ledger invariant broken: {bad}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
