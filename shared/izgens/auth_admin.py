"""Supabase Auth's admin API, through the official client (`supabase_auth`, the Auth
component of the `supabase` package).

Only the account purge (the `cleanup` function) deletes auth users, so only it imports
this module, and the client's import (~100 ms: pydantic models, httpx) happens on the
first purge, never on an HTTP function's cold start. `infra/package.py` follows imports,
so `supabase_auth` ships in the cleanup artifact alone.

    AuthApiError 404 user_not_found   the user is gone already: the purge step is done
    any other refusal, 5xx, network   ProviderUnavailable: the purge is retried next run
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from izgens import errors

if TYPE_CHECKING:
    from izgens.config import Settings

__all__ = ["AuthAdmin", "auth_admin"]

TIMEOUT_SECONDS = 10.0


class AuthAdmin:
    """The calls izgens makes on Supabase Auth's admin API, errors mapped to ours."""

    def __init__(self, client: Any) -> None:
        self._client = client  # supabase_auth.SyncGoTrueAdminAPI

    def delete_user(self, user_id: uuid.UUID) -> bool:
        """Hard-delete the auth user (its identities and sessions cascade). True when
        deleted now, False when Supabase no longer knew the user (a purge re-run)."""
        import httpx
        from supabase_auth.errors import AuthApiError, AuthError

        try:
            self._client.delete_user(str(user_id), should_soft_delete=False)
        except AuthApiError as exc:
            if exc.status == 404 and exc.code == "user_not_found":
                return False
            raise errors.ProviderUnavailable(
                f"Supabase Auth refused to delete the user ({exc.status})",
                provider_code=str(exc.code or exc.status),
            ) from exc
        except AuthError as exc:
            raise errors.ProviderUnavailable(f"Supabase Auth failed: {type(exc).__name__}") from exc
        except httpx.HTTPError as exc:
            raise errors.ProviderUnavailable("Supabase Auth is unreachable") from exc
        return True


@contextmanager
def auth_admin(settings: Settings) -> Iterator[AuthAdmin]:
    """An admin client for one purge run (HTTP/1.1, bounded timeouts), closed after it.

    Sends the service key as `apikey` and as the bearer token, as supabase-py's own
    `create_client(url, key).auth.admin` does.
    """
    import httpx
    from supabase_auth import SyncGoTrueAdminAPI

    key = settings.supabase_service_key
    if key is None:
        raise errors.ProviderUnavailable("SUPABASE_SERVICE_KEY is not set")
    secret = key.get_secret_value()
    http = httpx.Client(
        timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=3.0), follow_redirects=False, trust_env=False
    )
    client = SyncGoTrueAdminAPI(
        url=f"{settings.supabase_url.rstrip('/')}/auth/v1",
        headers={"apikey": secret, "Authorization": f"Bearer {secret}"},
        http_client=http,
    )
    try:
        yield AuthAdmin(client)
    finally:
        http.close()
