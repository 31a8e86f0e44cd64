"""Write (or check) infra/supabase/schema.txt: the catalogue the migrations build.

    python infra/schema.py [--check] [--server URL]

Builds a scratch database the way the tests do (infra/supabase/bootstrap/auth.sql, then
every migration), writes its catalogue (`izgens.migrations.catalogue`) to
infra/supabase/schema.txt and drops the database. The server is an embedded Postgres in a
temporary directory, or `--server` (a superuser URL; the scratch database is made and
dropped there). `--check` writes nothing and exits 1 with the difference when the file is
not what the migrations build; tests/functional/test_schema.py asserts the same.
See docs/migrations.md.
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def _server(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from izgens_local.pg import start_postgres

    pgdata = Path(tempfile.mkdtemp(prefix="izgens-schema-pg-"))
    pg = start_postgres(pgdata)
    try:
        yield pg.url
    finally:
        pg.stop()
        shutil.rmtree(pgdata, ignore_errors=True)


def built_catalogue(server: str) -> str:
    """The catalogue of a database migrated from scratch on `server`."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    from izgens.migrations import apply_migrations, catalogue

    name = f"izgens_schema_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    try:
        url = make_conninfo(server, dbname=name)
        apply_migrations(url, bootstrap_auth=True)
        return catalogue(url)
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


def main(argv: list[str] | None = None) -> int:
    from izgens.migrations import schema_path

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare, write nothing")
    parser.add_argument("--server", help="a Postgres server URL (default: embedded)")
    args = parser.parse_args(argv)
    with _server(args.server) as server:
        built = built_catalogue(server)
    path = schema_path()
    if not args.check:
        path.write_text(built)
        sys.stdout.write(f"wrote {path}\n")
        return 0
    kept = path.read_text() if path.exists() else ""
    if kept == built:
        return 0
    sys.stdout.writelines(
        difflib.unified_diff(
            kept.splitlines(keepends=True),
            built.splitlines(keepends=True),
            str(path),
            "built by the migrations",
        )  # fmt: skip
    )
    return 1


if __name__ == "__main__":
    sys.exit(main())
