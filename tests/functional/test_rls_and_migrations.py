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


SEQUENCE_PRIVILEGES = ("USAGE", "SELECT", "UPDATE")


def _sequence_grants(url: str) -> list[tuple[str, str, str]]:
    """(sequence, role, privilege) of every privilege an API role holds on a sequence."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "select n.nspname || '.' || c.relname, r.role, p.privilege"
            " from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " cross join (values ('anon'), ('authenticated')) r(role)"
            " cross join unnest(%s::text[]) p(privilege)"
            " where c.relkind = 'S' and n.nspname in ('public', 'izgens')"
            " and has_sequence_privilege(r.role, c.oid, p.privilege)",
            (list(SEQUENCE_PRIVILEGES),),
        ).fetchall()


def test_api_roles_hold_no_privilege_on_any_sequence(db_url: str, db: Database) -> None:
    """Supabase's default privileges hand anon and authenticated USAGE/SELECT/UPDATE on
    every new sequence (credit_ledger's and payment_events' identities): none are left,
    and a sequence a later migration creates gets none either, even after the local
    bootstrap ran again."""
    with psycopg.connect(db_url) as conn:
        identities = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace"
            " where c.relkind = 'S' and n.nspname = 'public'"
        ).fetchone()
    assert identities is not None and identities[0] >= 2
    assert _sequence_grants(db_url) == []
    apply_migrations(db_url, bootstrap_auth=True)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("create table public.later (id bigint generated always as identity)")
    assert _sequence_grants(db_url) == []
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db_url, "authenticated", None, "select setval('public.credit_ledger_id_seq', 1)")


def test_the_bootstrap_starts_from_supabases_default_privileges(pg_admin_url: str) -> None:
    """The starting point the test above is measured against: on a database that only had
    the bootstrap (a new Supabase project), a new sequence is granted to the API roles."""
    from psycopg.conninfo import make_conninfo

    from izgens.migrations import bootstrap_path

    name = f"izgens_boot_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        url = make_conninfo(pg_admin_url, dbname=name)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(bootstrap_path().read_text())
            conn.execute("create sequence public.fresh")
        assert ("public.fresh", "authenticated", "UPDATE") in _sequence_grants(url)
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def test_migrations_twice_is_a_no_op(db_url: str) -> None:
    assert pending(db_url) == []
    assert apply_migrations(db_url, bootstrap_auth=True) == []
    with psycopg.connect(db_url) as conn:
        names = [
            r[0] for r in conn.execute("select name from supabase_migrations.schema_migrations")
        ]
    assert "schema" in names
