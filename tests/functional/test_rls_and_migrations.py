"""Row-level security as Supabase's API roles see it, and the migration runner."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from izgens.db import Database
from izgens.migrations import apply_migrations, pending
from tests.conftest import make_user
from tests.functional.test_ledger import price, start

OWNED_TABLES = (
    "profiles",
    "credit_ledger",
    "generations",
    "reference_uploads",
    "purchases",
    "data_exports",
    "deletion_requests",
)


def as_role(url: str, role: str, user: uuid.UUID | None, sql: str, params: tuple = ()) -> list:
    with psycopg.connect(url) as conn:
        conn.execute(f"set local role {role}")
        if user is not None:
            claims = json.dumps({"sub": str(user), "role": role})
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        return conn.execute(sql, params).fetchall()


@pytest.fixture
def two_users(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    a = make_user(db, credits=price(db) * 2)
    b = make_user(db, credits=price(db) * 2)
    start(db, a)
    start(db, b)
    return a, b


def test_rls_is_enabled_on_every_table(db: Database) -> None:
    rows = db.all(
        "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity"
    )
    assert rows == []


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_authenticated_user_sees_only_own_rows(
    db_url: str, db: Database, two_users, table: str
) -> None:
    a, b = two_users
    rows = as_role(db_url, "authenticated", a, f"select user_id from public.{table}")
    assert all(r[0] == a for r in rows)
    if table in ("profiles", "credit_ledger", "generations"):
        assert rows, f"{table}: the owner should see their rows"


@pytest.mark.parametrize("table", OWNED_TABLES)
def test_anon_sees_nothing(db_url: str, db: Database, two_users, table: str) -> None:
    assert as_role(db_url, "anon", None, f"select * from public.{table}") == []


@pytest.mark.parametrize(
    "sql",
    [
        "update public.profiles set balance = balance + 1000",
        "insert into public.credit_ledger (user_id, delta, balance_after, reason, ref)"
        " values (auth.uid(), 5, 5, 'grant', 'x')",
        "delete from public.generations",
        "update public.generations set status = 'completed'",
        "insert into public.purchases (user_id, pack_id, credits, amount, currency)"
        " values (auth.uid(), 'starter', 1, 1, 'USD')",
    ],
)
def test_authenticated_user_cannot_write(db_url: str, db: Database, two_users, sql: str) -> None:
    a, _ = two_users
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db_url, "authenticated", a, sql)


@pytest.mark.parametrize("role", ["anon", "authenticated"])
def test_api_roles_cannot_call_money_functions(
    db_url: str, db: Database, two_users, role: str
) -> None:
    a, _ = two_users
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db_url, role, a, "select izgens.grant_credits(%s, 1000, 'steal')", (a,))


def test_migrations_twice_is_a_no_op(db_url: str) -> None:
    assert pending(db_url) == []
    assert apply_migrations(db_url, bootstrap_auth=True) == []
    with psycopg.connect(db_url) as conn:
        names = [
            r[0] for r in conn.execute("select name from supabase_migrations.schema_migrations")
        ]
    assert "schema" in names
