"""Applies infra/supabase/migrations in order and records them.

Records go to `supabase_migrations.schema_migrations`, the table the Supabase CLI uses, so
`izgens migrate` and `supabase db push` agree on what has been applied.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["MIGRATION_NAME", "apply_migrations", "bootstrap_path", "migrations_dir", "pending"]

MIGRATION_NAME = re.compile(r"^(\d{14})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x1295_0001


def _infra_dir() -> Path:
    override = os.environ.get("IZGENS_INFRA_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "infra"


def migrations_dir() -> Path:
    return _infra_dir() / "supabase" / "migrations"


def bootstrap_path() -> Path:
    return _infra_dir() / "supabase" / "bootstrap" / "auth.sql"


def _files(directory: Path) -> list[tuple[str, str, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise ValueError(f"migration {path.name} is not named YYYYMMDDHHMMSS_name.sql")
        found.append((match.group(1), match.group(2), path))
    return found


def _ensure_table(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute("create schema if not exists supabase_migrations")
    conn.execute(
        "create table if not exists supabase_migrations.schema_migrations"
        " (version text primary key, statements text[], name text)"
    )


def pending(url: str, directory: Path | None = None) -> list[str]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        _ensure_table(conn)
        done = {
            row[0]
            for row in conn.execute("select version from supabase_migrations.schema_migrations")
        }
    return [p.name for v, _, p in _files(directory or migrations_dir()) if v not in done]


def apply_migrations(
    url: str, *, bootstrap_auth: bool = False, directory: Path | None = None
) -> list[str]:
    """Apply every pending migration, each in its own transaction; returns their names.

    `bootstrap_auth` first loads the plain-Postgres stand-in for Supabase's auth schema
    (dev stack and tests only). Concurrent callers queue on an advisory lock.
    """
    import psycopg

    applied = []
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            if bootstrap_auth:
                conn.execute(bootstrap_path().read_text())
            _ensure_table(conn)
            done = {
                row[0]
                for row in conn.execute("select version from supabase_migrations.schema_migrations")
            }
            for version, name, path in _files(directory or migrations_dir()):
                if version in done:
                    continue
                sql = path.read_text()
                with conn.transaction():
                    conn.execute(sql)
                    conn.execute(
                        "insert into supabase_migrations.schema_migrations (version, statements, name)"
                        " values (%s, %s, %s)",
                        (version, [sql], name),
                    )
                applied.append(path.name)
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
