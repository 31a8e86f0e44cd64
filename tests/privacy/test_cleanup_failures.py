"""Failures page someone: a cleanup run in which a job failed (a purge that cannot delete the
account's objects, a revoked Auth service key, a job that raised) fails the `cleanup`
invocation, exits `izgens cleanup` with 1 and logs the per-job failure count that the
template's alarm counts, so the 30-day deletion promise cannot lapse in silence."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from izgens import cleanup
from izgens.config import reset_settings
from izgens.db import Database
from izgens.storage import get_storage, reset_storage
from tests.conftest import DevServer
from tests.events import load
from tests.infra.test_template import TEMPLATE
from tests.support.logs import LogCapture, capture_logs
from tests.support.servers import dead_url
from tests.support.users import make_user


def due_deletion(db: Database) -> uuid.UUID:
    """An account with a video, whose deletion is due now."""
    user = make_user(db, credits=5)
    key = f"videos/{user}/{uuid.uuid4()}.mp4"
    get_storage().client.put_object(Bucket=get_storage().bucket, Key=key, Body=b"\x00" * 64)
    db.execute(
        "insert into public.deletion_requests (user_id, scheduled_for) values (%s, now())", (user,)
    )
    return user


@pytest.fixture
def logged() -> Iterator[LogCapture]:
    """The cleanup logger's records (on the logger itself: the handler's
    configure_logging() replaces the root's handlers, caplog's among them)."""
    with capture_logs("izgens.cleanup", logging.INFO) as records:
        yield records


def failure_lines(logged: LogCapture) -> dict[str, tuple[int, int]]:
    """job -> (failures, level) from the per-job lines the metric filter reads."""
    found = {}
    for record in logged.records:
        fields = getattr(record, "fields", {})
        if "failures" in fields:
            found[fields["job"]] = (fields["failures"], record.levelno)
    return found


def test_a_purge_that_cannot_delete_objects_fails_the_invocation(
    services: dict, db: Database, monkeypatch: pytest.MonkeyPatch, logged: LogCapture
) -> None:
    from izgens_functions.cleanup.handler import handler

    user = due_deletion(db)
    monkeypatch.setenv("S3_ENDPOINT_URL", dead_url())  # the bucket is unreachable
    reset_settings()
    reset_storage()
    with pytest.raises(cleanup.CleanupFailed, match="purge"):
        handler(load("cleanup_jobs", jobs=["purge", "rate_limits", "ledger_check"]), None)
    lines = failure_lines(logged)
    assert lines["purge"] == (1, logging.ERROR)
    # the other jobs still ran, and said so
    assert lines["rate_limits"] == (0, logging.INFO) and lines["ledger_check"] == (0, logging.INFO)
    # nothing was half-forgotten: the account is still there for the next run
    assert db.one("select 1 as x from auth.users where id = %s", (user,)) is not None
    row = db.one("select status from public.deletion_requests where user_id = %s", (user,))
    assert row is not None and row["status"] == "purging"


def test_a_job_that_raises_fails_the_invocation(
    services: dict, db: Database, monkeypatch: pytest.MonkeyPatch, logged: LogCapture
) -> None:
    """The references job deletes objects before rows: with the bucket gone it raises."""
    from izgens_functions.cleanup.handler import handler

    user = make_user(db)
    db.execute(
        "insert into public.reference_uploads (key, user_id, kind, content_type, bytes, expires_at)"
        " values (%s, %s, 'image', 'image/png', 10, now() - interval '1 hour')",
        (f"references/{user}/{uuid.uuid4().hex}.png", user),
    )
    monkeypatch.setenv("S3_ENDPOINT_URL", dead_url())
    reset_settings()
    reset_storage()
    with pytest.raises(cleanup.CleanupFailed, match="references"):
        handler(load("cleanup_jobs", jobs=["references"]), None)
    assert failure_lines(logged)["references"] == (1, logging.ERROR)
    assert db.one("select count(*) as n from public.reference_uploads")["n"] == 1  # type: ignore[index]


def test_a_clean_run_returns_its_counts(services: dict, db: Database, logged: LogCapture) -> None:
    from izgens_functions.cleanup.handler import handler

    user = due_deletion(db)
    results = handler(load("scheduled"), None)  # the schedule's event: every job
    assert list(results) == list(cleanup.JOBS)
    assert results["purge"]["purged"] == 1 and cleanup.failed_jobs(results) == []
    assert db.one("select 1 as x from auth.users where id = %s", (user,)) is None
    # every job, not only the ones that can fail today, reports its count
    assert failure_lines(logged) == {name: (0, logging.INFO) for name in cleanup.JOBS}


def test_a_revoked_service_key_exits_the_command_with_1(
    services: dict, db: Database, dev_server: DevServer
) -> None:
    """`izgens cleanup` in its own process with a service key Supabase Auth (the dev
    server's stand-in, which expects the real one) no longer accepts."""
    user = due_deletion(db)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RATE_", "DB_POOL"))},
        **services["env"],
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "SUPABASE_URL": dev_server.base,
        "SUPABASE_SERVICE_KEY": "revoked-service-key-0000",
    }
    done = subprocess.run(
        [sys.executable, "-m", "izgens.cli", "cleanup", "--job", "purge"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, (done.stdout, done.stderr)
    assert json.loads(done.stdout)["purge"]["failed"] == 1
    assert "cleanup job(s) failed: purge" in done.stderr
    assert db.one("select 1 as x from auth.users where id = %s", (user,)) is not None


def _matches(pattern: str, entry: dict[str, Any]) -> bool:
    """CloudWatch's JSON filter syntax, the `{ $.a = * && $.b = * }` form only."""
    terms = pattern.strip().removeprefix("{").removesuffix("}").split("&&")
    fields = [term.strip().removeprefix("$.").removesuffix("= *").strip() for term in terms]
    assert all(term.strip().endswith("= *") for term in terms), pattern
    return all(field in entry for field in fields)


def test_the_template_alarms_on_every_jobs_failure_line(
    services: dict, db: Database, logged: LogCapture
) -> None:
    """The metric filter matches the very line each job logs (and not the ledger check's
    own line), its value is the count, and an alarm pages on any of it."""
    cleanup.run_jobs()
    entries = [json.loads(line) for line in logged.lines()]
    from cfnlint.decode import decode_str

    template, problems = decode_str(TEMPLATE.read_text())
    assert not problems
    resources = template["Resources"]
    (metric_filter,) = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Logs::MetricFilter"
        and r["Properties"]["MetricTransformations"][0]["MetricName"] == "CleanupJobFailures"
    ]
    assert metric_filter["LogGroupName"] == {"Ref": "CleanupLogGroup"}
    matched = [e for e in entries if _matches(metric_filter["FilterPattern"], e)]
    assert sorted(e["job"] for e in matched) == sorted(cleanup.JOBS)
    assert metric_filter["MetricTransformations"][0]["MetricValue"] == "$.failures"
    alarms = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::CloudWatch::Alarm"
        and r["Properties"].get("MetricName") == "CleanupJobFailures"
    ]
    paging = [a for a in alarms if a["ComparisonOperator"] == "GreaterThanThreshold"]
    assert paging and paging[0]["Statistic"] == "Sum" and paging[0]["Threshold"] == 0
    # and silence (no run at all) pages too
    assert any(a["TreatMissingData"] == "breaching" for a in alarms)
