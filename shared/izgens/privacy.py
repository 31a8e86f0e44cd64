"""The privacy promises: data export, account deletion and purge, retention jobs.

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
        row = self.db.one("select * from izgens.user_export(%s, %s)", (user_id, export_id))
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
        with conn.transaction():
            conn.execute("set transaction isolation level repeatable read, read only")
            account = conn.execute(
                "select p.user_id, u.email, u.created_at as signed_up_at, p.created_at, p.balance,"
                " p.age_confirmed_at, p.display_name, p.blocked_at, p.blocked_reason"
                " from public.profiles p join auth.users u on u.id = p.user_id where p.user_id = %s",
                (user_id,),
            ).fetchone()
            if account is None:
                raise errors.NotFound("the account no longer exists")
            yield from emit(
                '{"format":'
                + _dumps(EXPORT_FORMAT)
                + ',"generated_at":'
                + _dumps(datetime.now().astimezone())
                + ',"account":'
                + _dumps(account)
            )
            sections: list[tuple[str, str]] = [
                (
                    "ledger",
                    "select id, delta, balance_after, reason, ref, note, created_at"
                    " from public.credit_ledger where user_id = %s order by id",
                ),
                (
                    "generations",
                    "select * from public.generations where user_id = %s order by created_at, id",
                ),
                (
                    "reference_uploads",
                    "select * from public.reference_uploads where user_id = %s order by created_at",
                ),
                (
                    "purchases",
                    "select * from public.purchases where user_id = %s order by created_at",
                ),
                (
                    "payment_events",
                    "select e.* from public.payment_events e join public.purchases p"
                    " on p.id = e.purchase_id where p.user_id = %s order by e.id",
                ),
                (
                    "data_exports",
                    "select id, status, created_at, completed_at, expires_at"
                    " from public.data_exports where user_id = %s order by created_at",
                ),
                (
                    "deletion_requests",
                    "select * from public.deletion_requests where user_id = %s order by requested_at",
                ),
                (
                    "ip_addresses",
                    "select host(client_ip) as address, 'generation' as seen_on,"
                    " min(created_at) as first_seen, max(created_at) as last_seen"
                    " from public.generations where user_id = %s and client_ip is not null group by client_ip"
                    " union all select host(client_ip), 'purchase', min(created_at), max(created_at)"
                    " from public.purchases where user_id = %s and client_ip is not null group by client_ip",
                ),
            ]
            for name, sql in sections:
                yield from emit(f',"{name}":[')
                params = (user_id, user_id) if name == "ip_addresses" else (user_id,)
                with conn.cursor(name=f"export_{name}") as cur:
                    cur.itersize = FETCH_ROWS
                    cur.execute(sql, params)
                    first = True
                    for record in cur:
                        if name == "generations":
                            record = self._with_video_link(record, link_seconds)
                        yield from emit(("" if first else ",") + _dumps(record))
                        first = False
                yield from emit("]")
            yield from emit("}")
        if buffer:
            yield "".join(buffer).encode()

    def _with_video_link(self, record: dict[str, Any], seconds: int) -> dict[str, Any]:
        record = dict(record)
        key = record.get("video_key")
        usable = record.get("status") == "completed" and not record.get("deleted_at")
        record["video_url"] = self.storage.presigned_get(key, seconds) if key and usable else None
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

    def purge_due_accounts(self, limit: int) -> dict[str, int]:
        counts = {"purged": 0, "failed": 0}
        for request in self.db.all("select * from izgens.claim_purges(%s)", (limit,)):
            try:
                self.purge(request["user_id"])
                counts["purged"] += 1
            except errors.IzgensError as exc:
                # the lease runs out and the next run finishes the purge
                log_event(
                    logger,
                    "purge interrupted",
                    logging.WARNING,
                    request=str(request["id"]),
                    error=exc.code,
                )
                counts["failed"] += 1
        return counts

    def purge(self, user_id: uuid.UUID) -> None:
        """Every step is idempotent, so a purge interrupted anywhere finishes on re-run."""
        self._cancel_provider_tasks(user_id)
        objects = sum(
            self.storage.delete_prefix(f"{prefix}/{user_id}/")
            for prefix in ("videos", "references", "inputs", "exports")
        )
        self.db.one("select izgens.anonymise_payments(%s) as n", (user_id,))
        self.db.execute("select izgens.forget_user_rows(%s)", (user_id,))
        self._delete_auth_user(user_id)
        log_event(logger, "account purged", objects=objects)

    def _cancel_provider_tasks(self, user_id: uuid.UUID) -> None:
        from izgens.generations import Lifecycle

        rows = self.db.all(
            "select id, provider_task_id from public.generations"
            " where user_id = %s and status = 'submitted' and provider_task_id is not null",
            (user_id,),
        )
        if not rows:
            return
        provider = Lifecycle(self.settings, self.db, self.storage).provider
        for row in rows:
            try:
                provider.delete_task(row["provider_task_id"])
            except errors.ProviderError as exc:
                # running tasks cannot be canceled; their result finds no generation later
                log_event(
                    logger, "task not canceled at purge", generation=str(row["id"]), error=exc.code
                )

    def _delete_auth_user(self, user_id: uuid.UUID) -> None:
        """Supabase's Auth Admin API in production; plain SQL on a local database."""
        key = self.settings.supabase_service_key
        if key is None:
            if self.settings.env == "prod":
                raise errors.ProviderUnavailable("SUPABASE_SERVICE_KEY is needed to delete users")
            self.db.execute("select izgens.delete_auth_user(%s)", (user_id,))
            return
        import httpx

        secret = key.get_secret_value()
        url = f"{self.settings.supabase_url.rstrip('/')}/auth/v1/admin/users/{user_id}"
        try:
            response = httpx.delete(
                url, headers={"apikey": secret, "Authorization": f"Bearer {secret}"}, timeout=10
            )
        except httpx.HTTPError as exc:
            raise errors.ProviderUnavailable("Supabase Auth is unreachable") from exc
        if response.status_code not in (200, 204, 404):
            raise errors.ProviderUnavailable(f"Supabase Auth answered {response.status_code}")

    # -- retention ----------------------------------------------------------------------------

    def delete_expired_references(self, limit: int) -> int:
        rows = self.db.all("select key from izgens.claim_expired_references(%s)", (limit,))
        keys = [r["key"] for r in rows]
        self.storage.delete_keys(keys)
        if keys:
            self.db.execute("delete from public.reference_uploads where key = any(%s)", (keys,))
        return len(keys)
