"""Process-wide clients live in one registry (`izgens.clients`): built once under
concurrency, replaceable, and all reset by the SnapStart after-restore hook."""

from __future__ import annotations

import threading

from izgens import clients
from izgens.auth import get_verifier
from izgens.config import get_settings
from izgens.db import get_database
from izgens.http import after_restore
from izgens.storage import get_storage


def test_a_shared_client_is_built_once_by_concurrent_first_callers() -> None:
    built: list[object] = []
    closed: list[object] = []
    barrier = threading.Barrier(16)

    def build() -> object:
        value = object()
        built.append(value)
        return value

    shared = clients.Shared("test", build, close=closed.append)
    seen: list[object] = []

    def first() -> None:
        barrier.wait()
        seen.append(shared.get())

    threads = [threading.Thread(target=first) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(built) == 1 and {id(v) for v in seen} == {id(built[0])}
    replacement = object()
    shared.set(replacement)
    assert closed == built and shared.get() is replacement
    shared.reset()
    assert closed == [built[0], replacement]


def test_after_restore_resets_every_process_wide_client(db_url: str) -> None:
    before = [get_settings(), get_database(), get_verifier(), get_storage()]
    after_restore()
    after = [get_settings(), get_database(), get_verifier(), get_storage()]
    assert all(old is not new for old, new in zip(before, after, strict=True))
    assert get_database().one("select 1 as one") == {"one": 1}
