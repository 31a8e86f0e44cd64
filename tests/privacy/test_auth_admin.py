"""Supabase Auth's admin API as the purge uses it: the official client (the `supabase`
package and its `supabase_auth` component) against the dev server's stand-in, over real
HTTP, with Supabase's routes, bodies and errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from izgens import errors
from izgens.config import get_settings, reset_settings
from izgens.db import Database
from tests.conftest import DevServer
from tests.support.users import make_user

SERVICE_KEY = "test-auth-admin-service-key"


@pytest.fixture
def auth(dev_server: DevServer, db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The stand-in's URL, with SUPABASE_SERVICE_KEY set for it."""
    monkeypatch.setenv("SUPABASE_SERVICE_KEY", SERVICE_KEY)
    reset_settings()
    yield f"{dev_server.base}/auth/v1"
    reset_settings()


def user_with_identity(db: Database) -> uuid.UUID:
    user = make_user(db, "grace@example.com")
    db.execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider)"
        " values ('1099', %s, '{\"email\": \"grace@gmail.com\"}', 'google')",
        (user,),
    )
    db.execute(
        "insert into auth.sessions (id, user_id, created_at) values (%s, %s, now())",
        (uuid.uuid4(), user),
    )
    return user


def exists(db: Database, user: uuid.UUID) -> bool:
    return db.one("select 1 as x from auth.users where id = %s", (user,)) is not None


def test_the_official_supabase_client_deletes_a_user_through_the_stand_in(
    auth: str, dev_server: DevServer, db: Database, request: pytest.FixtureRequest
) -> None:
    from supabase import ClientOptions, create_client

    user = user_with_identity(db)
    http = httpx.Client(timeout=10)
    client = create_client(
        dev_server.base,
        SERVICE_KEY,
        options=ClientOptions(auto_refresh_token=False, persist_session=False, httpx_client=http),
    )
    request.addfinalizer(http.close)
    assert client.auth.admin.delete_user(str(user)) is None
    assert not exists(db, user)
    # the cascade Supabase has: identities, sessions and every izgens row
    for table in ("auth.identities", "auth.sessions", "public.profiles"):
        assert db.all(f"select 1 from {table} where user_id = %s", (user,)) == [], table

    from supabase_auth.errors import AuthApiError

    with pytest.raises(AuthApiError) as gone:
        client.auth.admin.delete_user(str(user))
    assert (gone.value.status, gone.value.code) == (404, "user_not_found")
    assert gone.value.message == "User not found"


def test_soft_delete_keeps_the_row_without_the_person(
    auth: str, dev_server: DevServer, db: Database
) -> None:
    from supabase import ClientOptions, create_client

    user = user_with_identity(db)
    with httpx.Client(timeout=10) as http:
        create_client(
            dev_server.base, SERVICE_KEY, options=ClientOptions(httpx_client=http)
        ).auth.admin.delete_user(str(user), should_soft_delete=True)
    row = db.one("select email, deleted_at from auth.users where id = %s", (user,))
    assert row is not None and row["email"] is None and row["deleted_at"] is not None
    assert db.all("select 1 from auth.identities where user_id = %s", (user,)) == []


def test_izgens_auth_admin_maps_every_answer(auth: str, db: Database) -> None:
    from izgens.auth_admin import auth_admin

    user = make_user(db)
    with auth_admin(get_settings()) as admin:
        assert admin.delete_user(user) is True
        assert not exists(db, user)
        assert admin.delete_user(user) is False  # 404 user_not_found: already done
        assert admin.delete_user(uuid.uuid4()) is False


@pytest.mark.parametrize(
    ("key", "code"),
    [("not-the-service-key", "401"), ("", "401")],
)
def test_a_wrong_or_missing_key_is_a_provider_failure_and_deletes_nothing(
    auth: str, db: Database, monkeypatch: pytest.MonkeyPatch, key: str, code: str
) -> None:
    from izgens.auth_admin import auth_admin

    user = make_user(db)
    settings = get_settings().model_copy(update={"supabase_service_key": None})
    if key:
        from pydantic import SecretStr

        settings = settings.model_copy(update={"supabase_service_key": SecretStr(key)})
        with auth_admin(settings) as admin, pytest.raises(errors.ProviderUnavailable) as refused:
            admin.delete_user(user)
        assert refused.value.provider_code == code
    else:
        with pytest.raises(errors.ProviderUnavailable), auth_admin(settings):
            pass
    assert exists(db, user)


def test_unreachable_auth_is_a_provider_failure(db: Database) -> None:
    from pydantic import SecretStr

    from izgens.auth_admin import auth_admin

    settings = get_settings().model_copy(
        update={"supabase_url": "http://127.0.0.1:9", "supabase_service_key": SecretStr("k")}
    )
    with auth_admin(settings) as admin, pytest.raises(errors.ProviderUnavailable):
        admin.delete_user(uuid.uuid4())


def call(
    auth: str, path: str, headers: dict[str, str], content: bytes | None = None
) -> httpx.Response:
    return httpx.request(
        "DELETE", f"{auth}/admin/users/{path}", headers=headers, content=content, timeout=10
    )


def test_the_stand_in_answers_as_supabase_does(
    auth: str, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db)
    admin = {"apikey": SERVICE_KEY, "Authorization": f"Bearer {SERVICE_KEY}"}
    versioned = {**admin, "X-Supabase-Api-Version": "2024-01-01"}

    # the gateway's own refusals
    missing = call(auth, str(user), {})
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    wrong = call(auth, str(user), {"apikey": "nope", "Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid API key"

    # Auth's, in both error shapes
    no_bearer = call(auth, str(user), {"apikey": SERVICE_KEY})
    assert no_bearer.status_code == 401
    assert no_bearer.json() == {
        "code": 401,
        "error_code": "no_authorization",
        "msg": "This endpoint requires a valid Bearer token",
    }
    user_token = dev_server.token(user)
    not_admin = call(
        auth,
        str(user),
        {"apikey": SERVICE_KEY, "Authorization": f"Bearer {user_token}"}
        | {"X-Supabase-Api-Version": "2024-01-01"},
    )
    assert not_admin.status_code == 403
    assert not_admin.json() == {"code": "not_admin", "message": "User not allowed"}
    assert not_admin.headers["x-supabase-api-version"] == "2024-01-01"
    assert not_admin.headers["x-sb-error-code"] == "not_admin"
    forged = call(auth, str(user), {"apikey": SERVICE_KEY, "Authorization": "Bearer a.b.c"})
    assert forged.status_code == 403 and forged.json()["error_code"] == "bad_jwt"
    admin_token = dev_server.token(uuid.uuid4(), claims={"role": "service_role"})
    assert (
        call(
            auth,
            str(uuid.uuid4()),
            {"apikey": SERVICE_KEY, "Authorization": f"Bearer {admin_token}"},
        ).json()["error_code"]
        == "user_not_found"
    )

    not_uuid = call(auth, "not-a-uuid", versioned)
    assert not_uuid.status_code == 404
    assert not_uuid.json() == {"code": "validation_failed", "message": "user_id must be an UUID"}
    bad_json = call(auth, str(user), versioned, b"{not json")
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "bad_json"
    assert exists(db, user)  # nothing refused deleted anything

    done = call(auth, str(user), versioned, b'{"should_soft_delete": false}')
    assert (done.status_code, done.json()) == (200, {})
    assert not exists(db, user)
    again = call(auth, str(user), versioned)
    assert again.status_code == 404
    assert again.json() == {"code": "user_not_found", "message": "User not found"}
