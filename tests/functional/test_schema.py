"""The schema the migrations build is the one infra/supabase/schema.txt shows, so a change
to a table, a grant or a function changes that file in the same commit (docs/migrations.md);
and the runner refuses a database built from another migration chain."""

from __future__ import annotations

import difflib
import re

import psycopg
import pytest

from izgens.migrations import apply_migrations, catalogue, pending, schema_path

SECTION = re.compile(
    r"^(schema|table|sequence|view|materialized view|foreign table|type|default privileges"
    r"|publication|CREATE OR REPLACE (FUNCTION|PROCEDURE)) "
)


def _labelled(text: str) -> list[str]:
    """Each line with the object it belongs to, so a difference names what changed."""
    out, section = [], ""
    for line in text.splitlines():
        if SECTION.match(line):
            section = line.split("(")[0].removesuffix(" owned by owner")
        out.append(f"{section} | {line}" if line else "")
    return out


def _difference(kept: str, built: str) -> list[str]:
    """The lines only one of the two has, each labelled with its object."""
    return [
        line
        for line in difflib.unified_diff(_labelled(kept), _labelled(built), lineterm="", n=0)
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]


def test_the_migrations_build_what_schema_txt_shows(db_url: str) -> None:
    """db_url is a copy of a database built from scratch by every migration, after the
    bootstrap (tests/conftest.py), on embedded PG 18 or the DATABASE_URL server."""
    difference = _difference(schema_path().read_text(), catalogue(db_url))
    assert difference == [], (
        "the migrations build another schema than infra/supabase/schema.txt shows; if the"
        " change is meant, run `python infra/schema.py` and commit the file:\n"
        + "\n".join(difference)
    )


def test_the_comparison_sees_a_changed_function_a_grant_and_a_column(db_url: str) -> None:
    before = catalogue(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "create or replace function izgens.clock() returns timestamptz"
            " language sql stable as $$ select now() $$"
        )
        conn.execute("grant execute on function izgens.ip_bucket(inet) to authenticated")
        conn.execute("grant update (display_name) on public.profiles to authenticated")
        conn.execute("alter table public.rate_limits add column note text")
    difference = _difference(before, catalogue(db_url))
    clock = "CREATE OR REPLACE FUNCTION izgens.clock | "
    assert (
        f"-{clock}  select coalesce(nullif(current_setting('izgens.clock', true), '')"
        "::timestamptz, now())"
    ) in difference
    assert f"+{clock}AS $function$ select now() $function$" in difference
    bucket = "CREATE OR REPLACE FUNCTION izgens.ip_bucket | "
    assert f"+{bucket}  -- grant execute to authenticated" in difference
    profiles = "table public.profiles | "
    assert f"+{profiles}  column display_name grant update to authenticated" in difference
    assert "+table public.rate_limits |   column note text" in difference
    # and nothing else: the clock's three lines became one, "no grants" became the grant
    assert len(difference) == 8, difference


def test_a_database_built_from_another_chain_is_refused(db_url: str) -> None:
    """A dev database from before the squash (issue 16) records versions no file has: the
    runner says so instead of building the new files on top of the old schema."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into supabase_migrations.schema_migrations (version, statements, name)"
            " values ('20261125000100', '{}', 'schema')"
        )
    with pytest.raises(RuntimeError, match="20261125000100"):
        apply_migrations(db_url, bootstrap_auth=True)
    with pytest.raises(RuntimeError, match="another migration chain"):
        pending(db_url)
