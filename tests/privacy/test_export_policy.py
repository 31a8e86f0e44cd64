"""The export against the privacy policy, section by section: a user who has every kind of
data the policy lists (signed in with Google, prompts, references, videos, purchases,
addresses, a browser session) finds each item in their export; a user with nothing finds
the same document with empty sections; a deleted generation is forgotten everywhere."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from izgens.db import Database
from izgens.storage import get_storage
from tests.conftest import DevServer
from tests.privacy.support import (
    MP4,
    PNG,
    completed_generation,
    objects,
    purchase,
    ready_export,
    reference,
)
from tests.support.generations import price
from tests.support.users import balance, bearer, make_user

POLICY = Path(__file__).resolve().parents[3] / "shared" / "reference" / "privacy-policy.txt"

GOOGLE = {
    "iss": "https://accounts.google.com",
    "sub": "110248495921238986420",
    "name": "Heidi Example",
    "full_name": "Heidi Example",
    "email": "heidi.example@gmail.com",
    "email_verified": True,
    "picture": "https://lh3.googleusercontent.com/a/heidi-avatar=s96-c",
    "avatar_url": "https://lh3.googleusercontent.com/a/heidi-avatar=s96-c",
    "provider_id": "110248495921238986420",
}
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36"
SESSION_IP = "198.51.100.41"
SIGN_IN_IP = "198.51.100.42"
PURCHASE_IP = "198.51.100.43"
GENERATION_IP = "203.0.113.7"  # tests.functional.test_ledger.start
PROMPT = "heidi's lighthouse at dusk, waves on the rocks"
SECRETS = ("bcrypt-hash-of-heidi", "recovery-token-heidi", "hmac-key-of-heidi-session")


def export_document(api: httpx.Client, token: str) -> tuple[dict[str, Any], bytes]:
    made = api.post("/privacy_export/privacy/exports", headers=bearer(token))
    assert made.status_code == 202, made.text
    status = ready_export(api, token, made.json()["id"])
    assert status["status"] == "ready", status
    raw = httpx.get(status["url"], timeout=30).content
    return json.loads(raw), raw


def google_user(db: Database) -> uuid.UUID:
    """A user as Supabase Auth stores a Google sign-in, with a browser session and the
    sign-in in Auth's audit log, and the credentials Auth keeps beside them."""
    user = make_user(db, GOOGLE["email"], credits=price(db) * 3)
    db.execute(
        "update auth.users set raw_user_meta_data = %s, raw_app_meta_data = %s,"
        " encrypted_password = %s, recovery_token = %s, last_sign_in_at = now(),"
        " email_confirmed_at = now() where id = %s",
        (
            json.dumps(GOOGLE),
            json.dumps({"provider": "google", "providers": ["google"]}),
            SECRETS[0],
            SECRETS[1],
            user,
        ),
    )
    db.execute(
        "insert into auth.identities (provider_id, user_id, identity_data, provider,"
        " last_sign_in_at, created_at, updated_at)"
        " values (%s, %s, %s, 'google', now(), now(), now())",
        (GOOGLE["sub"], user, json.dumps(GOOGLE)),
    )
    db.execute(
        "insert into auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip,"
        " refresh_token_hmac_key) values (%s, %s, now(), now(), 'aal1', %s, %s, %s)",
        (uuid.uuid4(), user, USER_AGENT, SESSION_IP, SECRETS[2]),
    )
    db.execute(
        "insert into auth.audit_log_entries (id, payload, created_at, ip_address)"
        " values (%s, %s, now(), %s)",
        (
            uuid.uuid4(),
            json.dumps({"actor_id": str(user), "action": "login", "log_type": "account"}),
            SIGN_IN_IP,
        ),
    )
    return user


def with_verify_hash(db: Database, user: uuid.UUID) -> None:
    db.execute(
        'update public.payment_events e set payload = e.payload || \'{"verify_hash": "feedface"}\''
        " from public.purchases p where p.id = e.purchase_id and p.user_id = %s",
        (user,),
    )


def addresses(doc: dict[str, Any]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for entry in doc["ip_addresses"]:
        found.setdefault(entry["stored_in"], set()).add(entry["address"])
    return found


def identity(doc: dict[str, Any]) -> dict[str, Any]:
    [google] = [i for i in doc["identities"] if i["provider"] == "google"]
    return google


# Section 1 of the policy, line by line: where each item is in the export.
CHECKLIST: dict[str, Callable[[dict[str, Any], dict[str, Any]], bool]] = {
    "Email address (for authentication).": lambda d, c: (
        d["account"]["email"] == d["auth_user"]["email"] == GOOGLE["email"]
    ),
    "If you sign in with Google: your Google account email, name, and profile picture URL.": (
        lambda d, c: (
            identity(d)["identity_data"]["email"] == GOOGLE["email"]
            and identity(d)["identity_data"]["name"] == GOOGLE["name"]
            and identity(d)["identity_data"]["avatar_url"] == GOOGLE["avatar_url"]
            and identity(d)["last_sign_in_at"] is not None
            and d["auth_user"]["raw_user_meta_data"]["full_name"] == GOOGLE["full_name"]
            and d["auth_user"]["raw_user_meta_data"]["picture"] == GOOGLE["picture"]
        )
    ),
    "Prompts you submit for generation.": lambda d, c: (
        [g["prompt"] for g in d["generations"]] == [PROMPT]
    ),
    "Reference files (images, videos) you upload.": lambda d, c: (
        [r["key"] for r in d["reference_uploads"]] == [c["reference"]]
        and httpx.get(d["reference_uploads"][0]["url"], timeout=10).content == PNG
    ),
    "Generated videos and metadata (resolution, duration, timestamps).": lambda d, c: (
        httpx.get(d["generations"][0]["video_url"], timeout=10).content == MP4
        and d["generations"][0]["resolution"] == "720p"
        and d["generations"][0]["duration"] == 5
        and d["generations"][0]["created_at"]
        and d["generations"][0]["completed_at"]
    ),
    "Credit balance, purchase history, and payment status.": lambda d, c: (
        d["account"]["balance"] == c["balance"]
        and [p["status"] for p in d["purchases"]] == ["completed"]
        and [e["status"] for e in d["payment_events"]] == ["completed"]
        and {entry["reason"] for entry in d["ledger"]} == {"grant", "generation", "purchase"}
    ),
    "IP address (for fraud prevention and rate limiting).": lambda d, c: (
        addresses(d)
        == {
            "public.generations.client_ip": {GENERATION_IP},
            "public.purchases.client_ip": {PURCHASE_IP},
            "auth.sessions.ip": {SESSION_IP},
            "auth.audit_log_entries.ip_address": {SIGN_IN_IP},
        }
    ),
    "Browser type and OS (from request headers).": lambda d, c: (
        [s["user_agent"] for s in d["sessions"]] == [USER_AGENT]
    ),
    "Authentication tokens (stored in your browser).": lambda d, c: (
        # the sessions those tokens belong to; no token or key is ever in the file
        len(d["sessions"]) == 1 and d["sessions"][0]["aal"] == "aal1"
    ),
}


def policy_section_1() -> list[str]:
    text = POLICY.read_text()
    section = text.split("1. Information We Collect", 1)[1].split("2. How We Use", 1)[0]
    return [
        line.removeprefix("- ").strip() for line in section.splitlines() if line.startswith("- ")
    ]


@pytest.mark.skipif(not POLICY.exists(), reason="the policy lives in ../shared/reference")
def test_the_checklist_is_the_policy() -> None:
    """If the policy's list changes, this checklist (and the export) must follow."""
    assert policy_section_1() == list(CHECKLIST)


@pytest.fixture
def heidi(services: dict, db: Database) -> dict[str, Any]:
    user = google_user(db)
    generation = completed_generation(db, user, PROMPT)
    ref = reference(db, user)
    bought = purchase(db, user, PURCHASE_IP)
    with_verify_hash(db, user)
    from izgens.privacy import Privacy

    Privacy.from_settings().request_deletion(user)  # asked once, then changed their mind
    Privacy.from_settings().cancel_deletion(user)
    return {
        "user": user,
        "generation": generation,
        "reference": ref,
        "purchase": bought,
        "balance": balance(db, user),
    }


def test_each_item_the_policy_lists_is_in_the_export(
    api: httpx.Client, dev_server: DevServer, heidi: dict[str, Any]
) -> None:
    doc, raw = export_document(api, dev_server.token(heidi["user"], GOOGLE["email"]))
    missing = [item for item, present in CHECKLIST.items() if not present(doc, heidi)]
    assert missing == []
    # §5: portable (one JSON document, RFC 3339 times); §8: no credential leaves with it
    assert doc["format"] == "izgens-export/1"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?[+-]\d\d:\d\d", doc["generated_at"])
    text = raw.decode()
    for secret in (*SECRETS, "feedface", "verify_hash", "encrypted_password", "recovery_token"):
        assert secret not in text, secret


def test_a_user_with_no_data_gets_the_same_shape_with_empty_sections(
    api: httpx.Client, dev_server: DevServer, db: Database, services: dict, heidi: dict[str, Any]
) -> None:
    full, _ = export_document(api, dev_server.token(heidi["user"]))
    nobody = make_user(db, "nobody@example.com")
    empty, _ = export_document(api, dev_server.token(nobody))
    assert list(empty) == list(full)
    for name, value in full.items():
        if isinstance(value, list):
            expected = 1 if name == "data_exports" else 0  # the export itself
            assert len(empty[name]) == expected, name
            assert value, f"{name} is empty for the full user: the checklist misses it"
    assert empty["account"]["balance"] == 0 and empty["auth_user"]["email"] == "nobody@example.com"


def test_a_deleted_generation_is_forgotten_by_every_route_and_the_export(
    api: httpx.Client, dev_server: DevServer, db: Database, services: dict
) -> None:
    from tests.support.generations import spec, start

    user = make_user(db, "ivan@example.com", credits=price(db) * 5)
    token = dev_server.token(user)
    only_here = reference(db, user)
    shared = reference(db, user)
    secret_prompt = "ivan's secret garden with a hidden door"
    gone = completed_generation(db, user, secret_prompt)
    db.execute(
        "update public.generations set reference_keys = %s, seed = 42, camera_fixed = true,"
        " error_message = 'mentions the garden' where id = %s",
        ([only_here, shared], gone),
    )
    kept = uuid.UUID(
        start(db, user, body=spec("a kept one", reference_keys=[shared]))["generation"]["id"]
    )
    ledger_before = db.all(
        "select reason, delta from public.credit_ledger where ref = %s order by id", (str(gone),)
    )

    deleted = api.delete(f"/status/generations/{gone}", headers=bearer(token))
    assert deleted.status_code == 204
    assert api.get(f"/status/generations/{gone}", headers=bearer(token)).status_code == 404
    history = api.get("/status/generations", headers=bearer(token)).json()["items"]
    assert [g["id"] for g in history] == [str(kept)]
    recreate = api.post(
        f"/generate/generations/{gone}/recreate",
        json={},
        headers=bearer(token) | {"Idempotency-Key": "again"},
    )
    assert recreate.status_code == 404

    row = db.one("select * from public.generations where id = %s", (gone,))
    assert row is not None and row["deleted_at"] is not None
    assert (row["prompt"], row["ratio"], row["seed"], row["camera_fixed"]) == (None,) * 4
    assert (row["reference_keys"], row["error_message"], row["request_hash"]) == ([], None, "")
    assert (row["cost"], row["model"], row["resolution"], row["duration"]) == (
        price(db),
        "seedance-1-0-pro-fast-251015",
        "720p",
        5,
    )
    # the money stays as it was: the ledger keeps the id and the amounts
    assert (
        db.all(
            "select reason, delta from public.credit_ledger where ref = %s order by id",
            (str(gone),),
        )
        == ledger_before
    )
    # the reference only it used is gone (object and row); the shared one stays
    assert objects(f"references/{user}/") == [shared]
    assert [r["key"] for r in db.all("select key from public.reference_uploads")] == [shared]
    assert get_storage().head(f"videos/{user}/{gone}.mp4") is None

    doc, raw = export_document(api, token)
    text = raw.decode()
    for erased in (secret_prompt, "mentions the garden", only_here):
        assert erased not in text, erased
    [forgotten] = [g for g in doc["generations"] if g["id"] == str(gone)]
    assert (
        forgotten["prompt"] is None and forgotten["deleted_at"] and forgotten["video_url"] is None
    )
    assert [r["key"] for r in doc["reference_uploads"]] == [shared]


def test_a_later_transition_cannot_write_content_back(db: Database, services: dict) -> None:
    """A running task failing after the delete writes its error into a deleted row."""
    from tests.support.generations import start

    user = make_user(db, "judy@example.com", credits=price(db) * 2)
    gen = uuid.UUID(start(db, user)["generation"]["id"])
    db.one("select * from izgens.mark_submitted(%s, 'cgt-judy')", (gen,))
    db.one("select izgens.forget_generation(%s, %s) as r", (user, gen))
    db.one(
        "select * from izgens.fail_generation(%s, 'OutputVideoSensitiveContentDetected', 'x')",
        (gen,),
    )
    row = db.one(
        "select status, prompt, error_code, error_message from public.generations where id = %s",
        (gen,),
    )
    assert row == {
        "status": "failed",
        "prompt": None,
        "error_code": "OutputVideoSensitiveContentDetected",
        "error_message": None,
    }


def test_deleting_an_unsent_generation_cancels_and_refunds_it(db: Database, services: dict) -> None:
    from tests.support.generations import start

    user = make_user(db, "ken@example.com", credits=price(db) * 2)
    before = balance(db, user)
    gen = uuid.UUID(start(db, user)["generation"]["id"])
    db.execute(
        "update public.generations set submit_lease_until = null, submit_attempted_at = null where id = %s",
        (gen,),
    )
    db.one("select izgens.forget_generation(%s, %s) as r", (user, gen))
    assert (
        db.one("select status from public.generations where id = %s", (gen,))["status"]
        == "canceled"
    )
    assert balance(db, user) == before
    assert db.all("select * from izgens.claim_submissions(10)") == []
