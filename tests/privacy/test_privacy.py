"""The privacy promises, over real HTTP: export everything (and nothing of anyone else),
delete on request after a cancelable grace period, keep payments anonymised, retention."""

from __future__ import annotations

import json
import logging
import uuid

import httpx
import pytest

from izgens import credits
from izgens.cleanup import run_jobs
from izgens.db import Database
from tests.conftest import DevServer
from tests.privacy.support import (
    completed_generation,
    objects,
    purchase,
    ready_export,
    reference,
)
from tests.support.generations import price
from tests.support.users import bearer, make_user


@pytest.fixture
def alice_and_bob(services: dict, db: Database) -> dict:
    cost = price(db)
    alice = make_user(db, "alice@example.com", credits=cost * 3)
    bob = make_user(db, "bob@example.com", credits=cost * 3)
    data = {
        "alice": alice,
        "bob": bob,
        "alice_gen": completed_generation(db, alice, "alice's secret lighthouse"),
        "bob_gen": completed_generation(db, bob, "bob's private garden"),
        "alice_ref": reference(db, alice),
        "bob_ref": reference(db, bob),
        "alice_purchase": purchase(db, alice, "198.51.100.23"),
        "bob_purchase": purchase(db, bob, "198.51.100.99"),
    }
    return data


def test_export_holds_everything_about_the_user_and_nothing_of_anyone_else(
    api: httpx.Client, dev_server: DevServer, db: Database, alice_and_bob: dict
) -> None:
    alice = alice_and_bob["alice"]
    token = dev_server.token(alice, "alice@example.com")
    made = api.post("/privacy_export/privacy/exports", headers=bearer(token))
    assert made.status_code == 202, made.text
    assert made.json()["status"] == "pending"
    status = ready_export(api, token, made.json()["id"])
    assert status["status"] == "ready" and status["url"] and status["expires_at"]
    raw = httpx.get(status["url"]).content
    doc = json.loads(raw)

    assert doc["format"] == "izgens-export/1"
    assert doc["account"]["email"] == "alice@example.com"
    assert (
        doc["account"]["age_confirmed_at"]
        and doc["account"]["balance"] == 3 * price(db) - price(db) + 500
    )
    assert len(doc["ledger"]) == 3  # seed grant, generation debit, purchase
    [gen] = doc["generations"]
    assert (
        gen["id"] == str(alice_and_bob["alice_gen"])
        and gen["prompt"] == "alice's secret lighthouse"
    )
    assert gen["status"] == "completed" and gen["model"] and gen["created_at"]
    assert httpx.get(gen["video_url"]).content[4:8] == b"ftyp"
    assert [r["key"] for r in doc["reference_uploads"]] == [alice_and_bob["alice_ref"]]
    assert [p["id"] for p in doc["purchases"]] == [str(alice_and_bob["alice_purchase"])]
    assert len(doc["payment_events"]) == 1
    assert doc["deletion_requests"] == []
    assert {a["address"] for a in doc["ip_addresses"]} == {"203.0.113.7", "198.51.100.23"}
    assert len(doc["data_exports"]) == 1

    text = raw.decode()
    for foreign in (
        "bob@example.com",
        "bob's private garden",
        str(alice_and_bob["bob"]),
        str(alice_and_bob["bob_gen"]),
        "198.51.100.99",
        alice_and_bob["bob_ref"],
    ):
        assert foreign not in text


def test_another_users_export_is_not_found(
    api: httpx.Client, dev_server: DevServer, db: Database, alice_and_bob: dict
) -> None:
    alice_token = dev_server.token(alice_and_bob["alice"])
    bob_token = dev_server.token(alice_and_bob["bob"])
    export_id = api.post("/privacy_export/privacy/exports", headers=bearer(alice_token)).json()[
        "id"
    ]
    response = api.get(f"/privacy_export/privacy/exports/{export_id}", headers=bearer(bob_token))
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert (
        api.get(
            f"/privacy_export/privacy/exports/{uuid.uuid4()}", headers=bearer(alice_token)
        ).status_code
        == 404
    )
    assert (
        api.get(
            "/privacy_export/privacy/exports/not-a-uuid", headers=bearer(alice_token)
        ).status_code
        == 422
    )


def test_exports_expire_with_their_object(
    api: httpx.Client, dev_server: DevServer, db: Database, alice_and_bob: dict
) -> None:
    alice = alice_and_bob["alice"]
    token = dev_server.token(alice)
    export_id = api.post("/privacy_export/privacy/exports", headers=bearer(token)).json()["id"]
    assert ready_export(api, token, export_id)["status"] == "ready"
    assert objects(f"exports/{alice}/") == [f"exports/{alice}/{export_id}.json"]
    db.execute(
        "update public.data_exports set expires_at = now() - interval '1 minute' where id = %s",
        (export_id,),
    )
    assert run_jobs(["exports"])["exports"]["expired"] == 1
    assert objects(f"exports/{alice}/") == []
    after = api.get(f"/privacy_export/privacy/exports/{export_id}", headers=bearer(token)).json()
    assert after["status"] == "expired" and after["url"] is None


def test_exports_are_rate_limited(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    services: dict,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from izgens.config import reset_settings

    monkeypatch.setenv("RATE_EXPORT_USER", "2")
    reset_settings()
    user = make_user(db, "carol@example.com")
    token = dev_server.token(user)
    codes = [
        api.post("/privacy_export/privacy/exports", headers=bearer(token)).status_code
        for _ in range(3)
    ]
    assert codes == [202, 202, 429]
    assert (
        db.one("select count(*) as n from public.data_exports where user_id = %s", (user,))["n"]
        == 2
    )


def test_deletion_end_to_end(
    api: httpx.Client, dev_server: DevServer, db: Database, alice_and_bob: dict
) -> None:
    alice, bob = alice_and_bob["alice"], alice_and_bob["bob"]
    token = dev_server.token(alice, "alice@example.com")
    generate = {"prompt": "one more", "model": "seedance-1-0-pro-fast-251015"}

    scheduled = api.post("/privacy_export/privacy/deletion", headers=bearer(token))
    assert scheduled.status_code == 202
    me = api.get("/account/me", headers=bearer(token)).json()
    assert me["deletion_scheduled_for"] == scheduled.json()["scheduled_for"]
    refused = api.post(
        "/generate/generations", json=generate, headers=bearer(token) | {"Idempotency-Key": "a1"}
    )
    assert refused.status_code == 403 and refused.json()["code"] == "deletion_pending"

    assert api.delete("/privacy_export/privacy/deletion", headers=bearer(token)).status_code == 204
    assert api.get("/account/me", headers=bearer(token)).json()["deletion_scheduled_for"] is None
    assert api.delete("/privacy_export/privacy/deletion", headers=bearer(token)).status_code == 404

    assert api.post("/privacy_export/privacy/deletion", headers=bearer(token)).status_code == 202
    run_jobs(["purge"])  # not due yet: nothing happens
    assert db.one("select 1 as x from auth.users where id = %s", (alice,)) is not None
    db.execute(
        "update public.deletion_requests set scheduled_for = now() where user_id = %s and status = 'scheduled'",
        (alice,),
    )
    assert run_jobs(["purge"])["purge"]["purged"] == 1

    for prefix in ("videos", "references", "exports"):
        assert objects(f"{prefix}/{alice}/") == []
    assert objects(f"videos/{bob}/") != []  # nobody else's objects
    for table in (
        "profiles",
        "credit_ledger",
        "generations",
        "reference_uploads",
        "data_exports",
        "deletion_requests",
    ):
        assert db.all(f"select 1 from public.{table} where user_id = %s", (alice,)) == [], table
    assert db.one("select 1 as x from auth.users where id = %s", (alice,)) is None
    kept = db.one(
        "select * from public.purchases where id = %s", (alice_and_bob["alice_purchase"],)
    )
    assert (
        kept is not None
        and kept["user_id"] is None
        and kept["client_ip"] is None
        and kept["anonymized_at"]
    )
    assert (
        db.one(
            "select count(*) as n from public.payment_events where purchase_id = %s", (kept["id"],)
        )["n"]
        == 1
    )
    assert credits.mismatches(db) == []

    # a token issued before the purge is still valid cryptographically: it must not revive
    assert api.get("/account/me", headers=bearer(token)).status_code == 401
    assert (
        api.post(
            "/generate/generations",
            json=generate,
            headers=bearer(token) | {"Idempotency-Key": "a2"},
        ).status_code
        == 401
    )
    assert db.all("select 1 from public.profiles where user_id = %s", (alice,)) == []


def test_an_interrupted_purge_finishes_on_the_next_run(
    db: Database, alice_and_bob: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    from izgens.config import reset_settings
    from izgens.privacy import Privacy

    alice = alice_and_bob["alice"]
    Privacy.from_settings().request_deletion(alice)
    db.execute(
        "update public.deletion_requests set scheduled_for = now() where user_id = %s", (alice,)
    )
    import os

    auth_url = os.environ["SUPABASE_URL"]
    monkeypatch.setenv(
        "SUPABASE_URL", "http://127.0.0.1:9"
    )  # Auth unreachable: the last step fails
    reset_settings()
    outcome = run_jobs(["purge"])["purge"]
    assert (outcome["purged"], outcome["failed"]) == (0, 1)
    assert objects(f"videos/{alice}/") == []  # steps before the failure happened
    assert (
        db.one("select status from public.deletion_requests where user_id = %s", (alice,))["status"]
        == "purging"
    )
    run_jobs(["purge"])  # the lease has not run out: no second purger
    monkeypatch.setenv("SUPABASE_URL", auth_url)
    reset_settings()
    db.execute(
        "update public.deletion_requests set purge_lease_until = now() - interval '1 second' where user_id = %s",
        (alice,),
    )
    assert run_jobs(["purge"])["purge"]["purged"] == 1
    assert db.one("select 1 as x from auth.users where id = %s", (alice,)) is None


def test_generations_in_flight_at_purge_end_cleanly(
    api: httpx.Client, dev_server: DevServer, db: Database, services: dict
) -> None:
    from izgens.generations import Lifecycle

    cost = price(db)
    user = make_user(db, "dana@example.com", credits=cost * 10)
    token = dev_server.token(user)
    made = api.post(
        "/generate/generations",
        json={"prompt": "[sim:delay=2] slow boat"},
        headers=bearer(token) | {"Idempotency-Key": "inflight"},
    )
    assert made.status_code == 202, made.text
    gen_id = made.json()["id"]
    db.execute(
        "insert into public.deletion_requests (user_id, scheduled_for) values (%s, now())", (user,)
    )
    assert run_jobs(["purge"])["purge"]["purged"] == 1
    assert db.all("select 1 from public.generations where id = %s", (gen_id,)) == []
    # the provider finishing later finds nothing to act on, and nothing breaks
    Lifecycle.from_settings().reconcile(older_than_seconds=0)
    assert objects(f"videos/{user}/") == []
    assert credits.mismatches(db) == []


def test_references_past_retention_are_deleted_newer_kept(db: Database, services: dict) -> None:
    user = make_user(db, "erin@example.com")
    old = reference(db, user, hours_old=100)
    new = reference(db, user, hours_old=1)
    assert run_jobs(["references"])["references"]["deleted"] == 1
    assert objects(f"references/{user}/") == [new]
    keys = [
        r["key"]
        for r in db.all("select key from public.reference_uploads where user_id = %s", (user,))
    ]
    assert keys == [new] and old not in keys


def test_info_logs_carry_no_prompt_email_or_ip(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    services: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    email = "frank-private@example.com"
    prompt = "a very private prompt about frank"
    user = make_user(db, email, credits=price(db) * 10)
    token = dev_server.token(user, email)
    headers = bearer(token) | {"Idempotency-Key": "logs-1", "X-Forwarded-For": "192.0.2.77"}
    made = api.post("/generate/generations", json={"prompt": prompt}, headers=headers)
    assert made.status_code == 202, made.text
    api.get(f"/status/generations/{made.json()['id']}", headers=bearer(token))
    api.get("/account/me", headers=bearer(token))
    api.post("/privacy_export/privacy/exports", headers=bearer(token))
    api.post("/privacy_export/privacy/deletion", headers=bearer(token))
    ours = [r for r in caplog.records if r.name.startswith("izgens") and r.levelno >= logging.INFO]
    assert ours, "no izgens log lines were captured"
    for record in ours:
        line = record.getMessage() + json.dumps(getattr(record, "fields", {}), default=str)
        for secret in (email, prompt, "frank", "127.0.0.1", "192.0.2.77", "203.0.113.7"):
            assert secret not in line, (secret, line)
