"""The privacy promises: data export, account deletion requests, retention jobs (the purge
itself is `izgens.purge`).

docs/privacy.md maps each promise of the privacy policy to the code here and its test.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
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

EXPORT_FORMAT = "izgens-export/1"
FETCH_ROWS = 2000
CHUNK_BYTES = 256 * 1024
MAX_VIDEO_LINK_SECONDS = 12 * 3600  # presigned links cannot outlive the signer's credentials


# Credentials and one-time tokens Supabase Auth keeps beside the person's data: never
# exported (a password hash or a live recovery token in a downloaded file is a risk, not
# a right of access). Every other column of auth.users is.
AUTH_USER_SECRETS = (
    "encrypted_password",
    "confirmation_token",
    "recovery_token",
    "email_change_token_new",
    "email_change_token_current",
    "phone_change_token",
    "reauthentication_token",
)

ACCOUNT_SQL = (
    "select p.user_id, u.email, u.created_at as signed_up_at, p.created_at, p.balance,"
    " p.age_confirmed_at, p.display_name, p.blocked_at, p.blocked_reason,"
    f" to_jsonb(u) - '{{{','.join(AUTH_USER_SECRETS)}}}'::text[] as auth_user"
    " from public.profiles p join auth.users u on u.id = p.user_id where p.user_id = %s"
)

# Each section of the document: every column of the user's rows (new columns flow in),
# less what is not theirs to hold (Plisio's signature; a session's token key). A query
# whose one column is `doc` yields that object as the row.
SECTIONS: tuple[tuple[str, str], ...] = (
    (
        "identities",
        "select * from auth.identities where user_id = %(user)s order by created_at, id",
    ),
    (
        "sessions",
        "select to_jsonb(s) - 'refresh_token_hmac_key' as doc from auth.sessions s"
        " where user_id = %(user)s order by created_at, id",
    ),
    (
        "auth_audit_log",
        "select id, created_at, ip_address, payload from auth.audit_log_entries"
        " where payload ->> 'actor_id' = %(user)s::text order by created_at, id",
    ),
    (
        "ledger",
        "select id, delta, balance_after, reason, ref, note, created_at"
        " from public.credit_ledger where user_id = %(user)s order by id",
    ),
    (
        "generations",
        "select * from public.generations where user_id = %(user)s order by created_at, id",
    ),
    (
        "reference_uploads",
        "select * from public.reference_uploads where user_id = %(user)s order by created_at, key",
    ),
    (
        "purchases",
        "select * from public.purchases where user_id = %(user)s order by created_at, id",
    ),
    (
        "payment_events",
        "select e.id, e.purchase_id, e.order_number, e.txn_id, e.status, e.source, e.flagged,"
        " e.received_at, e.payload - 'verify_hash' as payload"
        " from public.payment_events e join public.purchases p on p.id = e.purchase_id"
        " where p.user_id = %(user)s order by e.id",
    ),
    (
        "data_exports",
        "select id, status, created_at, completed_at, expires_at"
        " from public.data_exports where user_id = %(user)s order by created_at",
    ),
    (
        "deletion_requests",
        "select * from public.deletion_requests where user_id = %(user)s order by requested_at",
    ),
    (
        "ip_addresses",
        "select address, stored_in, count(*) as times, min(at) as first_seen, max(at) as last_seen"
        " from ("
        "  select host(client_ip) as address, 'public.generations.client_ip' as stored_in,"
        "   created_at as at from public.generations"
        "   where user_id = %(user)s and client_ip is not null"
        "  union all select host(client_ip), 'public.purchases.client_ip', created_at"
        "   from public.purchases where user_id = %(user)s and client_ip is not null"
        "  union all select host(ip), 'auth.sessions.ip', created_at"
        "   from auth.sessions where user_id = %(user)s and ip is not null"
        "  union all select ip_address, 'auth.audit_log_entries.ip_address', created_at"
        "   from auth.audit_log_entries"
        "   where payload ->> 'actor_id' = %(user)s::text and ip_address <> ''"
        " ) seen group by address, stored_in order by stored_in, first_seen",
    ),
)


class ExportView(BaseModel):
    id: uuid.UUID
    status: str
    url: str | None = None
    expires_at: datetime | None = None


class DeletionView(BaseModel):
    scheduled_for: datetime


def _plain(value: Any) -> Any:
    """JSON for what Postgres hands back: RFC 3339 times, uuids, decimals, addresses."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID | Decimal):
        return str(value)
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, ipaddress.IPv4Interface | ipaddress.IPv6Interface):
        return str(value.ip)
    raise TypeError(f"cannot export {type(value).__name__}")


def _dumps(value: Any) -> str:
    return json.dumps(value, default=_plain, ensure_ascii=False, separators=(",", ":"))


class Privacy:
    def __init__(self, settings: Settings, db: Database, storage: Storage) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage

    @classmethod
    def from_settings(cls) -> Privacy:
        from izgens.config import get_settings
        from izgens.db import get_database
        from izgens.storage import get_storage

        return cls(get_settings(), get_database(), get_storage())

    # -- exports ------------------------------------------------------------------------------

    def request_export(self, user_id: uuid.UUID, client_ip: str | None = None) -> ExportView:
        """Record the request (rate limited per user and address), then build the export
        right away; a build that dies is finished by the cleanup job."""
        s = self.settings
        row = self.db.one(
            "select * from izgens.request_export_limited(%s, %s, %s, %s, %s)",
            (user_id, s.rate_export_user, s.rate_window_seconds, client_ip, s.rate_export_ip),
        )
        assert row is not None
        self.build_export(row["id"])
        return self.get_export(user_id, row["id"])

    def get_export(self, user_id: uuid.UUID, export_id: uuid.UUID) -> ExportView:
        row = self.db.one(
            "select * from public.data_exports where id = %s and user_id = %s", (export_id, user_id)
        )
        if row is None:
            raise errors.NotFound("no such export")
        url = None
        if row["status"] == "ready" and row["object_key"]:
            url = self.storage.presigned_get(
                row["object_key"],
                self.settings.export_link_seconds,
                filename=f"izgens-export-{export_id}.json",
            )
        return ExportView(id=row["id"], status=row["status"], url=url, expires_at=row["expires_at"])

    def build_export(self, export_id: uuid.UUID | None = None) -> bool:
        """Build one pending export (that one, or the oldest); False when none was claimable."""
        row = self.db.one("select * from izgens.claim_export(%s)", (export_id,))
        if row is None:
            return False
        user_id, export_id = row["user_id"], row["id"]
        key = self.storage.export_key(user_id, export_id)
        try:
            with self.db.connection() as conn:
                info = self.storage.put_json_stream(key, self._document(conn, user_id))
        except errors.IzgensError as exc:
            self.db.execute("select izgens.fail_export(%s, %s)", (export_id, exc.code))
            log_event(
                logger, "export failed", logging.WARNING, export=str(export_id), error=exc.code
            )
            return True
        self.db.one(
            "select * from izgens.finish_export(%s, %s, %s, %s)",
            (export_id, key, info.size, self.settings.export_ttl_hours),
        )
        log_event(logger, "export ready", export=str(export_id), bytes=info.size)
        return True

    def _document(self, conn: psycopg.Connection[Any], user_id: uuid.UUID) -> Iterator[bytes]:
        """The export, streamed in chunks from server-side cursors inside one consistent
        snapshot: memory stays flat however long the history is."""
        buffer: list[str] = []
        size = 0

        def emit(text: str) -> Iterator[bytes]:
            nonlocal size
            buffer.append(text)
            size += len(text)
            if size >= CHUNK_BYTES:
                yield "".join(buffer).encode()
                buffer.clear()
                size = 0

        link_seconds = min(self.settings.export_ttl_hours * 3600, MAX_VIDEO_LINK_SECONDS)
        links = {
            "generations": lambda r: self._with_link(r, "video_url", "video_key", link_seconds),
            "reference_uploads": lambda r: self._with_link(r, "url", "key", link_seconds),
        }
        with conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            account = conn.execute(ACCOUNT_SQL, (user_id,)).fetchone()
            if account is None:
                raise errors.NotFound("the account no longer exists")
            auth_user = account.pop("auth_user")
            yield from emit(
                '{"format":'
                + _dumps(EXPORT_FORMAT)
                + ',"generated_at":'
                + _dumps(datetime.now().astimezone())
                + ',"account":'
                + _dumps(account)
                + ',"auth_user":'
                + _dumps(auth_user)
            )
            for name, sql in SECTIONS:
                yield from emit(f',"{name}":[')
                with conn.cursor(name=f"export_{name}") as cur:
                    cur.itersize = FETCH_ROWS
                    cur.execute(sql, {"user": user_id})
                    first = True
                    transform = links.get(name)
                    for record in cur:
                        if len(record) == 1 and "doc" in record:
                            record = record["doc"]
                        if transform is not None:
                            record = transform(record)
                        yield from emit(("" if first else ",") + _dumps(record))
                        first = False
                yield from emit("]")
            yield from emit("}")
        if buffer:
            yield "".join(buffer).encode()

    def _with_link(
        self, record: dict[str, Any], field: str, key_field: str, seconds: int
    ) -> dict[str, Any]:
        """A download link for an object still held: a finished, undeleted video; a
        reference upload not yet deleted."""
        record = dict(record)
        key = record.get(key_field)
        usable = not record.get("deleted_at") and record.get("status", "completed") == "completed"
        record[field] = self.storage.presigned_get(key, seconds) if key and usable else None
        return record

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
