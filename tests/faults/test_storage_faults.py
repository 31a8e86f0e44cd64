"""S3 failing during the video copy: the generation stays `storing`, nothing is left in the
bucket, nothing is refunded; once S3 is back, reconciliation copies again and completes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from izgens.config import reset_settings
from izgens.storage import reset_storage
from tests.faults.support import assert_books, settle, wait_provider_idle
from tests.generation.conftest import GenEnv
from tests.support.waiting import wait_for


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def bucket_failing(how: str) -> Iterator[None]:
    """The functions' bucket fails until the block ends: its endpoint is dead, or the bucket
    refuses every write (it does not exist)."""
    with pytest.MonkeyPatch.context() as patch:
        if how == "dead endpoint":
            patch.setenv("S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
        else:
            patch.setenv("S3_BUCKET", "izgens-refusing-bucket")
        reset_settings()
        reset_storage()
        try:
            yield
        finally:
            reset_storage()
    reset_settings()


@pytest.mark.parametrize("how", ["dead endpoint", "refusing bucket"])
def test_s3_failing_during_the_copy_leaves_storing_until_reconciliation(
    env: GenEnv, how: str
) -> None:
    user = env.user()
    with bucket_failing(how):
        gen = env.accepted(user)
        wait_provider_idle(env)
        env.settle()  # the success callback ran the copy, and it failed
        row = wait_for(lambda: (r := env.row(gen["id"]))["status"] == "storing" and r)
    assert row["storing_lease_until"] is not None and row["video_key"] is None
    assert not env.object_exists(env.storage.video_key(user.id, gen["id"]))
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]

    settle(env)  # the lease runs out; the job copies again, to the bucket that is back
    assert assert_books(env)[gen["id"]] == "completed"
    assert len(env.sim_tasks(gen["id"])) == 1
