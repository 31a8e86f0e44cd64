"""Exports as background jobs: the request records and hands off, never builds; a builder
(the worker thread here, an asynchronous Lambda invocation on AWS) claims and builds with
progress; cleanup takes over what was lost or died; three dead attempts fail the export."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from izgens import export_jobs
from izgens.cleanup import run_jobs
from izgens.config import reset_settings
from izgens.db import Database
from tests.conftest import DevServer
from tests.events import load
from tests.privacy.support import (
    completed_generation,
    objects,
    ready_export,
    reference,
)
from tests.support.generations import price
from tests.support.servers import QuietHandler, StubServer
from tests.support.users import bearer, make_user


def export_row(db: Database, export_id: str | uuid.UUID) -> dict[str, Any]:
    row = db.one("select * from public.data_exports where id = %s", (export_id,))
    assert row is not None
    return row


@pytest.fixture
def user(services: dict, db: Database) -> uuid.UUID:
    someone = make_user(db, "olga@example.com", credits=price(db) * 4)
    completed_generation(db, someone, "olga's kite over the dunes")
    reference(db, someone)
    return someone


@pytest.fixture
def lost_hand_offs(monkeypatch: pytest.MonkeyPatch) -> list[uuid.UUID]:
    """Hand-offs that never reach a builder (a throttled invocation, a process that died)."""
    lost: list[uuid.UUID] = []
    monkeypatch.setattr(export_jobs, "dispatch", lost.append)
    return lost


def test_the_request_records_and_hands_off_without_building(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    user: uuid.UUID,
    lost_hand_offs: list[uuid.UUID],
) -> None:
    token = dev_server.token(user)
    made = api.post("/privacy_export/privacy/exports", headers=bearer(token))
    assert made.status_code == 202, made.text
    body = made.json()
    assert body["status"] == "pending" and body["url"] is None and body["started_at"] is None
    assert lost_hand_offs == [uuid.UUID(body["id"])]
    shown = api.get(f"/privacy_export/privacy/exports/{body['id']}", headers=bearer(token))
    assert shown.json()["status"] == "pending"
    assert objects(f"exports/{user}/") == []  # nothing was built in the request

    # the hand-off was lost: the cleanup job builds it
    assert run_jobs(["exports"])["exports"]["built"] == 1
    done = ready_export(api, token, body["id"])
    assert done["status"] == "ready" and done["url"] and done["started_at"]
    assert done["rows_done"] == done["rows_total"] > 24  # the count of lines is exact
    doc = json.loads(httpx.get(done["url"], timeout=10).content)
    assert doc["generations"][0]["prompt"] == "olga's kite over the dunes"
    assert objects(f"exports/{user}/") == [f"exports/{user}/{body['id']}.json"]


def test_progress_shows_while_building_and_a_stale_builder_lets_go(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    user: uuid.UUID,
    lost_hand_offs: list[uuid.UUID],
) -> None:
    token = dev_server.token(user)
    export_id = api.post("/privacy_export/privacy/exports", headers=bearer(token)).json()["id"]
    claimed = db.one("select * from izgens.claim_export(%s)", (export_id,))
    assert claimed is not None and claimed["status"] == "building" and claimed["attempts"] == 1
    assert db.one("select * from izgens.claim_export(%s)", (export_id,)) is None  # one builder
    mine = db.one("select izgens.export_progress(%s, 10, 5000) as mine", (export_id,))
    assert mine == {"mine": True}
    shown = api.get(f"/privacy_export/privacy/exports/{export_id}", headers=bearer(token)).json()
    assert shown["status"] == "building" and shown["url"] is None
    assert (shown["rows_done"], shown["bytes"]) == (10, 5000)
    assert shown["rows_total"] == claimed["rows_total"] > 10

    # the builder stalled past its lease: another takes over, the first may not finish it
    db.execute(
        "update public.data_exports set lease_until = now() - interval '1 second' where id = %s",
        (export_id,),
    )
    assert run_jobs(["exports"])["exports"]["built"] == 1
    row = export_row(db, export_id)
    assert (row["status"], row["attempts"]) == ("ready", 2)
    stale = db.one("select izgens.export_progress(%s, 11, 6000) as mine", (export_id,))
    assert stale == {"mine": False}


def test_an_export_that_keeps_dying_fails_after_three_attempts(
    db: Database, user: uuid.UUID
) -> None:
    row = db.one("insert into public.data_exports (user_id) values (%s) returning id", (user,))
    export_id = row["id"]
    for attempt in (1, 2, 3):
        claimed = db.one("select * from izgens.claim_export(%s)", (export_id,))
        assert claimed is not None and claimed["attempts"] == attempt
        db.execute(  # the builder died: its lease runs out
            "update public.data_exports set lease_until = now() - interval '1 second'"
            " where id = %s",
            (export_id,),
        )
    assert db.one("select * from izgens.claim_export(%s)", (export_id,)) is None
    gave_up = export_row(db, export_id)
    assert (gave_up["status"], gave_up["error"]) == ("failed", "gave_up")
    assert run_jobs(["exports"])["exports"]["built"] == 0


class LambdaStandIn:
    """Lambda's Invoke API on loopback (what AWS_ENDPOINT_URL_LAMBDA points boto3 at):
    records each invocation and answers as Lambda does for InvocationType=Event."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.calls: list[dict[str, Any]] = []
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                outer.calls.append(
                    {
                        "path": self.path,
                        "type": self.headers.get("x-amz-invocation-type"),
                        "signed": self.headers.get("authorization", "").startswith("AWS4-"),
                        "payload": json.loads(self.read_body()),
                    }
                )
                body = b"" if outer.status == 202 else b'{"Message": "Rate exceeded"}'
                errors = {"x-amzn-ErrorType": "TooManyRequestsException"}
                self.reply(outer.status, body, headers=errors)

        self.server = StubServer(Handler).start()
        self.url = self.server.base

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def aws_lambda(monkeypatch: pytest.MonkeyPatch, services: dict) -> Iterator[LambdaStandIn]:
    stand_in = LambdaStandIn()
    monkeypatch.setenv("EXPORT_BUILDER_FUNCTION", "izgens-prod-privacy_export:live")
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", stand_in.url)
    export_jobs.lambda_client.reset()
    reset_settings()
    yield stand_in
    stand_in.stop()
    export_jobs.lambda_client.reset()


def test_on_aws_the_build_is_an_asynchronous_invocation_of_the_function(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    user: uuid.UUID,
    aws_lambda: LambdaStandIn,
) -> None:
    from izgens_functions.privacy_export.handler import handler

    token = dev_server.token(user)
    made = api.post("/privacy_export/privacy/exports", headers=bearer(token)).json()
    [call] = aws_lambda.calls
    assert call["path"] == "/2015-03-31/functions/izgens-prod-privacy_export%3Alive/invocations"
    assert call["type"] == "Event" and call["signed"]
    assert call["payload"] == load("export_job", export_id=made["id"])
    assert export_row(db, made["id"])["status"] == "pending"

    # what Lambda then runs: the function's handler with that event
    assert handler(call["payload"], None) == {"export_id": made["id"], "built": True}
    assert export_row(db, made["id"])["status"] == "ready"
    assert handler(call["payload"], None)["built"] is False  # a retried event: nothing to do


def test_a_refused_invocation_leaves_the_export_to_cleanup(
    api: httpx.Client,
    dev_server: DevServer,
    db: Database,
    user: uuid.UUID,
    aws_lambda: LambdaStandIn,
) -> None:
    aws_lambda.status = 429
    token = dev_server.token(user)
    made = api.post("/privacy_export/privacy/exports", headers=bearer(token))
    assert made.status_code == 202 and made.json()["status"] == "pending"
    assert aws_lambda.calls  # it was tried
    assert run_jobs(["exports"])["exports"]["built"] == 1
    assert export_row(db, made.json()["id"])["status"] == "ready"
