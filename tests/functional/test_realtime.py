"""Live status through Supabase Realtime: the tables a frontend watches are in the
`supabase_realtime` publication (and nothing else of ours is), on plain Postgres as on
Supabase, and a subscriber's RLS lets each change reach only its owner."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from izgens.db import Database
from izgens.migrations import apply_migrations
from tests.conftest import _admin
from tests.support.generations import price, start
from tests.support.users import make_user

WATCHED = {("public", "generations"), ("public", "profiles")}


def published(url: str) -> set[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "select schemaname, tablename from pg_publication_tables"
            " where pubname = 'supabase_realtime'"
        ).fetchall()
    return {(r[0], r[1]) for r in rows}


def test_the_publication_holds_the_watched_tables_and_nothing_else(db_url: str) -> None:
    assert published(db_url) == WATCHED


def test_an_existing_publication_is_used_as_is(pg_admin_url: str) -> None:
    """On Supabase the publication exists before our migrations (with every operation
    published); the migration adds our tables to it instead of failing."""
    name = f"izgens_rt_{uuid.uuid4().hex[:10]}"
    _admin(pg_admin_url, f'create database "{name}"')
    url = make_conninfo(pg_admin_url, dbname=name)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("create publication supabase_realtime")
        apply_migrations(url, bootstrap_auth=True)
        assert published(url) == WATCHED
        with psycopg.connect(url) as conn:
            ops = conn.execute(
                "select pubinsert, pubupdate, pubdelete from pg_publication"
                " where pubname = 'supabase_realtime'"
            ).fetchone()
        assert ops == (True, True, True)
    finally:
        _admin(pg_admin_url, f'drop database if exists "{name}" with (force)')


def visible_to(url: str, user: uuid.UUID, table: str, key: str, value: object) -> bool:
    """What Realtime does for each change and subscriber: read the changed row as the
    subscriber (role `authenticated`, their JWT claims), under RLS."""
    with psycopg.connect(url) as conn:
        conn.execute("set local role authenticated")
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (json.dumps({"sub": str(user), "role": "authenticated"}),),
        )
        row = conn.execute(f"select 1 from public.{table} where {key} = %s", (value,)).fetchone()
    return row is not None


@pytest.mark.parametrize("table", ["generations", "profiles"])
def test_each_change_reaches_only_its_owner(db_url: str, db: Database, table: str) -> None:
    alice = make_user(db, credits=price(db) * 2)
    bob = make_user(db, credits=price(db) * 2)
    gen = uuid.UUID(start(db, alice)["generation"]["id"])
    key, value = ("id", gen) if table == "generations" else ("user_id", alice)
    assert visible_to(db_url, alice, table, key, value)
    assert not visible_to(db_url, bob, table, key, value)


def test_a_deleted_generation_reaches_nobody(db_url: str, db: Database) -> None:
    alice = make_user(db, credits=price(db) * 2)
    gen = uuid.UUID(start(db, alice)["generation"]["id"])
    db.one("select izgens.forget_generation(%s, %s) as r", (alice, gen))
    assert not visible_to(db_url, alice, "generations", "id", gen)
