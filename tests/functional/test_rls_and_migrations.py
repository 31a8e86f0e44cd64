"""Row-level security and privileges as Supabase's API roles see them, and the migration
runner.

Every check runs on a database where each table it looks at holds rows: of the user asking
and of another user (live and deleted ones where the policy hides deleted rows), so a
policy that shows too much, or a privilege left in place, fails the check."""

from __future__ import annotations

import hashlib
import json
import uuid

import psycopg
import pytest

from izgens.db import Database
from izgens.migrations import apply_migrations, pending
from tests.support.generations import price, start
from tests.support.users import make_user

# table -> its key; each row belongs to one user (user_id), whose reads RLS lets through
OWNED = {
    "profiles": "user_id",
    "credit_ledger": "id",
    "generations": "id",
    "reference_uploads": "key",
    "purchases": "id",
    "data_exports": "id",
    "deletion_requests": "id",
}
HIDES_DELETED = {"generations", "reference_uploads"}  # the owner's policy: deleted_at is null
CATALOGUE = "credit_packs"  # signed-in users read the active packs
PRIVATE = ("payment_events", "rate_limits", "pricing", "provider_prices", "video_input_floors")
API_ROLES = ("anon", "authenticated")


def as_role(url: str, role: str, user: uuid.UUID | None, sql: str, params: tuple = ()) -> list:
    """One statement as an API role with the user's JWT claims, as PostgREST runs it."""
    with psycopg.connect(url) as conn:
        conn.execute(f"set local role {role}")
        if user is not None:
            claims = json.dumps({"sub": str(user), "role": role})
            conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _rows_of(db: Database, user: uuid.UUID) -> None:
    """Rows of this user in every owned table, deleted ones included."""
    start(db, user)
    forgotten = start(db, user)["generation"]["id"]
    db.one("select izgens.forget_generation(%s, %s) as r", (user, forgotten), idempotent=False)
    for deleted in (False, True):
        key = f"references/{user}/{uuid.uuid4().hex}.png"
        db.one(
            "select * from izgens.register_upload(%s, %s, 'image', 'image/png', 100, 24, 100,"
            " 60, '203.0.113.7', 100)",
            (user, key),
            idempotent=False,
        )
        if deleted:
            db.execute(
                "update public.reference_uploads set deleted_at = now() where key = %s", (key,)
            )
    bought = db.one(
        "select id from izgens.start_checkout(%s, 'starter', %s, '203.0.113.7', 100, 60, 100)",
        (user, uuid.uuid4().hex),
        idempotent=False,
    )
    assert bought is not None
    event = {
        "order_number": str(bought["id"]),
        "status": "new",
        "source_currency": "USD",
        "source_amount": "5.00",
    }
    db.one(
        "select izgens.record_payment_event(%s, %s, 'callback') as r",
        (json.dumps(event), hashlib.sha256(uuid.uuid4().bytes).hexdigest()),
        idempotent=False,
    )
    db.one(
        "select * from izgens.request_export(%s, 100, 60, '203.0.113.7', 100)",
        (user,),
        idempotent=False,
    )
    db.one("select * from izgens.request_deletion(%s, 24)", (user,), idempotent=False)


@pytest.fixture
def two_users(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """Two users with rows in every table; one retired pack; the seeded price tables."""
    users = (make_user(db, credits=price(db) * 4), make_user(db, credits=price(db) * 4))
    for user in users:
        _rows_of(db, user)
    db.execute(
        "insert into public.credit_packs (id, credits, price, currency, active)"
        " values ('retired', 10, 1, 'USD', false)"
    )
    for table in (*OWNED, CATALOGUE, *PRIVATE):
        count = db.one(f"select count(*) as n from public.{table}")
        assert count is not None and count["n"] > 0, f"{table} has no rows to check"
    return users


def _fingerprint(db: Database, table: str) -> str:
    row = db.one(
        f"select md5(coalesce(string_agg(t::text, ',' order by t::text), '')) as h"
        f" from public.{table} t"
    )
    assert row is not None
    return row["h"]


def test_every_table_is_classified_here(db: Database) -> None:
    """A new table fails this until the checks below know whose rows it holds."""
    rows = db.all(
        "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind in ('r', 'p')"
    )
    assert {r["relname"] for r in rows} == {*OWNED, CATALOGUE, *PRIVATE}


def test_rls_is_enabled_on_every_table(db: Database) -> None:
    rows = db.all(
        "select relname from pg_class c join pg_namespace n on n.oid = c.relnamespace"
        " where n.nspname = 'public' and c.relkind = 'r' and not c.relrowsecurity"
    )
    assert rows == []


@pytest.mark.parametrize("table", OWNED)
def test_authenticated_user_sees_only_own_rows(
    db_url: str, db: Database, two_users, table: str
) -> None:
    a, b = two_users
    key = OWNED[table]
    live = " and deleted_at is null" if table in HIDES_DELETED else ""
    own = db.all(f"select {key} as k from public.{table} where user_id = %s{live}", (a,))
    others = db.all(f"select {key} as k from public.{table} where user_id <> %s", (a,))
    assert own and others
    if table in HIDES_DELETED:
        assert db.all(
            f"select 1 from public.{table} where user_id = %s and deleted_at is not null", (a,)
        ), f"{table}: the user should have a deleted row to hide"
    seen = as_role(db_url, "authenticated", a, f"select {key} from public.{table}")
    assert sorted(r[0] for r in seen) == sorted(r["k"] for r in own)


@pytest.mark.parametrize("table", [*OWNED, CATALOGUE])
def test_anon_sees_nothing(db_url: str, db: Database, two_users, table: str) -> None:
    assert as_role(db_url, "anon", None, f"select * from public.{table}") == []


def test_signed_in_users_see_only_the_active_packs(db_url: str, db: Database, two_users) -> None:
    a, _ = two_users
    active = {r["id"] for r in db.all("select id from public.credit_packs where active")}
    assert active and "retired" not in active
    seen = as_role(db_url, "authenticated", a, "select id from public.credit_packs")
    assert {r[0] for r in seen} == active


@pytest.mark.parametrize("role", API_ROLES)
@pytest.mark.parametrize("table", PRIVATE)
def test_api_roles_cannot_read_prices_events_or_limits(
    db_url: str, db: Database, two_users, table: str, role: str
) -> None:
    a, _ = two_users
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db_url, role, a, f"select * from public.{table}")


@pytest.mark.parametrize("table", [*OWNED, CATALOGUE, *PRIVATE])
def test_api_roles_cannot_write(db_url: str, db: Database, two_users, table: str) -> None:
    """Insert, update, delete and truncate are refused outright (a missing revoke would let
    an update or delete through silently, touching whatever rows RLS shows), and the rows
    are unchanged."""
    a, _ = two_users
    column = db.one(
        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
        " and not attisdropped and attidentity = '' and attgenerated = ''"
        " order by attnum desc limit 1",
        (f"public.{table}",),
    )
    assert column is not None
    col = column["attname"]
    before = _fingerprint(db, table)
    allowed = []
    for role in API_ROLES:
        for sql in (
            f"insert into public.{table} default values",
            f"update public.{table} set {col} = {col}",
            f"delete from public.{table}",
            f"truncate public.{table} cascade",
        ):
            try:
                as_role(db_url, role, a, sql)
            except psycopg.errors.InsufficientPrivilege:
                continue
            except psycopg.Error as exc:
                allowed.append(f"{role}: {sql} (got past the privilege check: {exc})")
            else:
                allowed.append(f"{role}: {sql}")
    assert allowed == []
    assert _fingerprint(db, table) == before


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_cannot_call_money_functions(
    db_url: str, db: Database, two_users, role: str
) -> None:
    a, _ = two_users
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_role(db_url, role, a, "select izgens.grant_credits(%s, 1000, 'steal')", (a,))


@pytest.mark.parametrize("role", [*API_ROLES, "service_role"])
def test_no_function_of_ours_is_callable_by_an_api_role(db: Database, role: str) -> None:
    """No USAGE on schema izgens, and no EXECUTE on any function in it either."""
    schema = db.one("select has_schema_privilege(%s, 'izgens', 'usage') as u", (role,))
    assert schema == {"u": False}
    callable_ = db.all(
        "select p.oid::regprocedure::text as f from pg_proc p"
        " join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'izgens' and has_function_privilege(%s, p.oid, 'execute')",
        (role,),
    )
    assert callable_ == []
    functions = db.one(
        "select count(*) as n from pg_proc p join pg_namespace n on n.oid = p.pronamespace"
        " where n.nspname = 'izgens'"
    )
    assert functions is not None and functions["n"] > 50


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
