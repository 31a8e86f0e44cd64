"""What every command works with: the database (DATABASE_URL, or the dev stack's), the settings the cleanup jobs read, the exit-code exceptions, output."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

__all__ = ["HTTP_FUNCTIONS"]

HTTP_FUNCTIONS = ("generate", "status", "account", "plisio_webhook", "privacy_export")


class UsageError(Exception):
    """A bad argument or environment: exit code 2."""


class Refused(Exception):
    """The command will not do this here: exit code 1."""


def _out(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def _progress(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


@contextlib.contextmanager
def _database_url() -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    try:
        from izgens_local.stack import start_database
    except ImportError:
        raise SystemExit("DATABASE_URL is not set (and the dev stack is not installed)") from None
    pg = start_database()
    try:
        yield pg.url
    finally:
        pg.stop()


@contextlib.contextmanager
def _db() -> Iterator[Any]:
    from izgens.db import Database

    with _database_url() as url:
        db = Database(url, size=2, name="izgens-cli")
        try:
            yield db
        finally:
            db.close()


@contextlib.contextmanager
def _job_environment() -> Iterator[str]:
    """Settings for library code that reads `get_settings()` (the cleanup jobs): the
    environment as it is, or, with DATABASE_URL unset, the dev stack's database and dev
    values, so jobs reach the simulators and bucket of a running `make dev`."""
    from izgens.config import reset_settings
    from izgens.db import reset_database

    if os.environ.get("DATABASE_URL"):
        try:
            yield os.environ["DATABASE_URL"]
        finally:
            reset_database()
        return
    with _database_url() as url:
        from izgens_local.stack import DevPorts, dev_environment

        applied = dev_environment(DevPorts.from_env(), url)
        os.environ.update(applied)
        reset_settings()
        reset_database()
        try:
            yield url
        finally:
            reset_database()
            for name in applied:
                os.environ.pop(name, None)
            reset_settings()
