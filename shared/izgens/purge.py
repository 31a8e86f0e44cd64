"""The account purge: what `cleanup` does when a deletion request falls due.

Kept apart from `izgens.privacy` (which the `privacy_export` function imports) because it
is the only user of Supabase Auth's admin client (`izgens.auth_admin`): no HTTP function
imports or ships it.

Every step is idempotent, so a purge interrupted anywhere finishes on the next run:
provider tasks canceled where they still can be, the user's objects (videos, references,
exports) deleted through the S3 API, payment records anonymised, rows the auth cascade
cannot reach deleted, then the auth user (Supabase Auth's admin API; plain SQL on a
local database without a service key), whose cascade removes every other row.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import ExitStack
from typing import TYPE_CHECKING

from izgens import errors
from izgens.logs import log_event

if TYPE_CHECKING:
    from izgens.auth_admin import AuthAdmin
    from izgens.config import Settings
    from izgens.db import Database
    from izgens.storage import Storage

__all__ = ["Purger"]

logger = logging.getLogger("izgens.purge")

PREFIXES = ("videos", "references", "inputs", "exports")


class Purger:
    def __init__(self, settings: Settings, db: Database, storage: Storage) -> None:
        self.settings = settings
        self.db = db
        self.storage = storage

    @classmethod
    def from_settings(cls) -> Purger:
        from izgens.config import get_settings
        from izgens.db import get_database
        from izgens.storage import get_storage

        return cls(get_settings(), get_database(), get_storage())

    def purge_due_accounts(self, limit: int) -> dict[str, int]:
        counts = {"purged": 0, "failed": 0}
        requests = self.db.all("select * from izgens.claim_purges(%s)", (limit,))
        if not requests:
            return counts
        with ExitStack() as stack:
            admin = self._auth_admin(stack)
            for request in requests:
                try:
                    self.purge(request["user_id"], admin)
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

    def _auth_admin(self, stack: ExitStack) -> AuthAdmin | None:
        """Supabase Auth's admin client when a service key is set; None on a local
        database, where the purge deletes the auth user with SQL (never in production)."""
        if self.settings.supabase_service_key is None:
            if self.settings.env == "prod":
                raise errors.ProviderUnavailable("SUPABASE_SERVICE_KEY is needed to delete users")
            return None
        from izgens.auth_admin import auth_admin

        return stack.enter_context(auth_admin(self.settings))

    def purge(self, user_id: uuid.UUID, admin: AuthAdmin | None) -> None:
        self._cancel_provider_tasks(user_id)
        objects = sum(self.storage.delete_prefix(f"{prefix}/{user_id}/") for prefix in PREFIXES)
        self.db.one("select izgens.anonymise_payments(%s) as n", (user_id,))
        self.db.execute("select izgens.forget_user_rows(%s)", (user_id,))
        if admin is None:
            self.db.execute("select izgens.delete_auth_user(%s)", (user_id,))
        else:
            admin.delete_user(user_id)
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
