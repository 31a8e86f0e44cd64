"""The privacy promises: data export, account deletion requests, retention jobs (the purge
itself is `izgens.purge`).

An export is a background job: the request only records it (`request_export`) and hands
it to a builder (`izgens.export_jobs`: an asynchronous invocation on AWS, a worker thread
in the dev stack and the container, the `cleanup` job for any that died). The builder
(`build_export`) streams the document that Postgres assembles (`izgens.export_lines`, one
COPY) into the bucket, signing the download links on the way, with flat memory.

docs/privacy.md maps each promise of the privacy policy to the code here and its test.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from izgens import errors
from izgens.logs import log_event

if TYPE_CHECKING:
    import psycopg

    from izgens.config import Settings
    from izgens.db import Database
    from izgens.storage import Storage

__all__ = [
    "DeletionView",
    "ExportView",
    "Privacy",
]

logger = logging.getLogger("izgens.privacy")

CHUNK_BYTES = 1024 * 1024  # handed to the bucket writer at a time
PROGRESS_EVERY_SECONDS = 1.0  # heartbeat: progress and a longer lease
MAX_VIDEO_LINK_SECONDS = 12 * 3600  # presigned links cannot outlive the signer's credentials
HEADER = b'{"format":'

# the sections whose rows get a download link, and its field
LINK_FIELDS = {b"generations": b',"video_url":', b"reference_uploads": b',"url":'}

# CSV with a delimiter and a quote that JSON text never holds raw (it escapes every control
# character): Postgres then sends each line byte for byte, with no escaping to undo.
EXPORT_COPY = (
    "copy (select line, link_key from izgens.export_lines(%s, %s))"
    " to stdout (format csv, delimiter e'\\x02', quote e'\\x01')"
)


class ExportView(BaseModel):
    """An export as its owner sees it: `status` pending → building → ready (or failed,
    expired); while building, `rows_done` of `rows_total` lines written."""

    id: uuid.UUID
    status: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    rows_total: int | None = None
    rows_done: int | None = None
    bytes: int | None = None
    url: str | None = None
    expires_at: datetime | None = None


class DeletionView(BaseModel):
    scheduled_for: datetime


class Privacy:
    def __init__(self, settings: Settings, db: Database, storage: Storage | None = None) -> None:
        self.settings = settings
        self.db = db
        self._storage = storage

    @classmethod
    def from_settings(cls) -> Privacy:
        from izgens.config import get_settings
        from izgens.db import get_database

        return cls(get_settings(), get_database())

    @property
    def storage(self) -> Storage:
        """The bucket client, imported on first use: reading an export's status or
        requesting one never needs it (cold start)."""
        if self._storage is None:
            from izgens.storage import get_storage

            self._storage = get_storage()
        return self._storage

    # -- exports ------------------------------------------------------------------------------

    def request_export(self, user_id: uuid.UUID, client_ip: str | None = None) -> ExportView:
        """Record the request (rate limited per user and address) and hand it to a builder;
        the document is never built here. A hand-off that fails is not an error: the
        export stays pending and the `cleanup` job builds it."""
        from izgens import export_jobs

        s = self.settings
        row = self.db.one(
            "select * from izgens.request_export(%s, %s, %s, %s, %s)",
            (user_id, s.rate_export_user, s.rate_window_seconds, client_ip, s.rate_export_ip),
        )
        assert row is not None
        export_jobs.dispatch(row["id"])
        return self._view(row)

    def get_export(self, user_id: uuid.UUID, export_id: uuid.UUID) -> ExportView:
        row = self.db.one("select * from izgens.user_export(%s, %s)", (user_id, export_id))
        if row is None:
            raise errors.NotFound("no such export")
        return self._view(row)

    def _view(self, row: dict[str, Any]) -> ExportView:
        url = None
        if row["status"] == "ready" and row["object_key"]:
            url = self.storage.presigned_get(
                row["object_key"],
                self.settings.export_link_seconds,
                filename=f"izgens-export-{row['id']}.json",
            )
        fields = {k: row.get(k) for k in ExportView.model_fields if k != "url"}
        return ExportView(**fields, url=url)

    def build_export(self, export_id: uuid.UUID | None = None) -> bool:
        """Build one export (that one, or the oldest claimable); False when none was
        claimable (another builder has it, or it is finished)."""
        row = self.db.one("select * from izgens.claim_export(%s)", (export_id,))
        if row is None:
            return False
        user_id, export_id = row["user_id"], row["id"]
        key = self.storage.export_key(user_id, export_id)
        heartbeat = _Heartbeat(self.db, export_id)
        try:
            with self.db.dedicated() as conn:
                document = self._document(conn, user_id, heartbeat)
                info = self.storage.put_json_stream(key, document)
        except _LostLease:
            log_event(logger, "export taken over", logging.WARNING, export=str(export_id))
            return True
        except errors.IzgensError as exc:
            self.db.execute("select izgens.fail_export(%s, %s)", (export_id, exc.code))
            log_event(
                logger, "export failed", logging.WARNING, export=str(export_id), error=exc.code
            )
            return True
        self.db.one(
            "select * from izgens.finish_export(%s, %s, %s, %s, %s)",
            (export_id, key, info.size, self.settings.export_ttl_hours, heartbeat.rows),
        )
        log_event(
            logger, "export ready", export=str(export_id), bytes=info.size, rows=heartbeat.rows
        )
        return True

    def _document(
        self,
        conn: psycopg.Connection[Any],
        user_id: uuid.UUID,
        heartbeat: Callable[[int, int], None],
    ) -> Iterator[bytes]:
        """The document as Postgres writes it (one COPY of `izgens.export_lines` inside one
        repeatable-read snapshot), its rows joined with commas and each download link
        signed and added, in chunks: memory stays flat however long the history is."""
        seconds = min(self.settings.export_ttl_hours * 3600, MAX_VIDEO_LINK_SECONDS)
        sign = self.storage.link_signer(seconds)
        out = bytearray()
        rows = written = 0
        first = True  # the next data row opens its section: no comma before it
        link_field: bytes | None = None  # `,"video_url":` in the sections that have links
        with conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            # UNION ALL yields its branches in order only in a plan without parallel append
            conn.execute("set local max_parallel_workers_per_gather = 0")
            with conn.cursor().copy(EXPORT_COPY, (user_id, datetime.now(UTC))) as copy:
                for data in copy:
                    line = bytes(data)
                    cut = line.rindex(b"\x02")  # CSV: line, delimiter, link key, newline
                    if rows == 0:
                        if not line.startswith(HEADER):
                            raise errors.NotFound("the account no longer exists")
                        out += line[:cut]
                    elif line[0] == 0x7B:  # `{`: a row
                        if not first:
                            out += b","
                        first = False
                        if link_field is None:
                            out += line[:cut]
                        else:
                            out += line[: cut - 1]  # the row's closing brace comes last
                            out += link_field
                            if cut + 2 == len(line):
                                out += b"null}"
                            else:
                                out += b'"'
                                out += sign(line[cut + 1 : -1])
                                out += b'"}'
                    else:  # a section's opening (`,"name":[`) or closing, the last brace
                        out += line[:cut]
                        if line[cut - 1] == 0x5B:  # `[`
                            first = True
                            link_field = LINK_FIELDS.get(line[2 : cut - 3])
                    out += b"\n"
                    rows += 1
                    if len(out) >= CHUNK_BYTES:
                        written += len(out)
                        yield bytes(out)
                        out.clear()
                        heartbeat(rows, written)
        written += len(out)
        heartbeat(rows, written)
        yield bytes(out)

    def expire_exports(self, limit: int) -> int:
        rows = self.db.all("select * from izgens.expire_exports(%s)", (limit,))
        for row in rows:
            if row["object_key"]:
                self.storage.delete(row["object_key"])
        return len(rows)

    # -- deletion -----------------------------------------------------------------------------

    def request_deletion(self, user_id: uuid.UUID) -> DeletionView:
        row = self.db.one(
            "select * from izgens.request_deletion(%s, %s)",
            (user_id, self.settings.deletion_grace_hours),
        )
        assert row is not None
        log_event(logger, "account deletion scheduled", scheduled_for=row["scheduled_for"])
        return DeletionView(scheduled_for=row["scheduled_for"])

    def cancel_deletion(self, user_id: uuid.UUID) -> None:
        self.db.one("select * from izgens.cancel_deletion(%s)", (user_id,))
        log_event(logger, "account deletion canceled")

    # -- retention ----------------------------------------------------------------------------

    def delete_expired_references(self, limit: int) -> int:
        rows = self.db.all("select key from izgens.claim_expired_references(%s)", (limit,))
        keys = [r["key"] for r in rows]
        self.storage.delete_keys(keys)
        if keys:
            self.db.one("select izgens.drop_reference_rows(%s) as n", (keys,))
        return len(keys)


class _LostLease(Exception):
    """The export was claimed by another builder after this one stalled: stop, write nothing."""


class _Heartbeat:
    """Progress and lease renewal, at most every PROGRESS_EVERY_SECONDS, on the pool's
    connection (the build's own connection is busy with the COPY)."""

    def __init__(self, db: Database, export_id: uuid.UUID) -> None:
        self.db = db
        self.export_id = export_id
        self.rows = 0
        self._last = time.monotonic()

    def __call__(self, rows: int, written: int) -> None:
        self.rows = rows
        now = time.monotonic()
        if now - self._last < PROGRESS_EVERY_SECONDS:
            return
        self._last = now
        row = self.db.one(
            "select izgens.export_progress(%s, %s, %s) as mine", (self.export_id, rows, written)
        )
        if row is None or not row["mine"]:
            raise _LostLease
