"""Helpers for the benchmarks: a throwaway migrated Postgres and table printing."""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from izgens.migrations import apply_migrations


@contextlib.contextmanager
def migrated_database() -> Iterator[str]:
    """A fresh migrated database: on DATABASE_URL's server if set, else embedded Postgres
    with its default (durable) settings, so the numbers mean what production means."""
    given = os.environ.get("DATABASE_URL")
    pg = None
    pgdata = None
    if given:
        admin = given
    else:
        from izgens_local.pg import start_postgres

        pgdata = Path(tempfile.mkdtemp(prefix="izgens-bench-pg-"))
        pg = start_postgres(pgdata)
        admin = pg.url
    name = f"izgens_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    url = make_conninfo(admin, dbname=name)
    try:
        apply_migrations(url, bootstrap_auth=True)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{name}" with (force)')
        if pg is not None:
            pg.stop()
        if pgdata is not None:
            shutil.rmtree(pgdata, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


def table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [headers, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
