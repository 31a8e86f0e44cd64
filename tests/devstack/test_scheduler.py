"""The dev stack's stand-in for the EventBridge schedule."""

from __future__ import annotations

import threading
import time

import pytest

from izgens_local.scheduler import DEFAULT_INTERVAL, CleanupScheduler, interval_from_env


def test_runs_on_its_interval_until_stopped() -> None:
    calls: list[float] = []
    scheduler = CleanupScheduler(0.05, lambda: calls.append(time.monotonic())).start()
    deadline = time.monotonic() + 5
    while len(calls) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert len(calls) >= 3
    stopped_at = len(calls)
    time.sleep(0.15)
    assert len(calls) == stopped_at, "it ran after stop()"


def test_stop_waits_for_the_run_in_progress() -> None:
    started, finished = threading.Event(), threading.Event()

    def slow() -> None:
        started.set()
        time.sleep(0.3)
        finished.set()

    scheduler = CleanupScheduler(60, slow).start()
    assert started.wait(5)
    scheduler.stop()
    assert finished.is_set()


def test_a_failing_run_is_logged_and_the_next_one_still_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("database went away")

    scheduler = CleanupScheduler(0.02, flaky).start()
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    scheduler.stop()
    assert len(calls) >= 2
    assert "scheduled cleanup run failed" in caplog.text


def test_interval_zero_is_off() -> None:
    calls: list[int] = []
    scheduler = CleanupScheduler(0, lambda: calls.append(1)).start()
    time.sleep(0.05)
    scheduler.stop()
    assert not scheduler.enabled and calls == []


@pytest.mark.parametrize(
    "raw, expected", [(None, DEFAULT_INTERVAL), ("", DEFAULT_INTERVAL), ("0", 0), ("2.5", 2.5)]
)
def test_interval_from_the_environment(
    raw: str | None, expected: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    if raw is None:
        monkeypatch.delenv("IZGENS_CLEANUP_INTERVAL", raising=False)
    else:
        monkeypatch.setenv("IZGENS_CLEANUP_INTERVAL", raw)
    assert interval_from_env() == expected


@pytest.mark.parametrize("raw", ["ten", "-1"])
def test_a_bad_interval_says_what_is_wrong(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IZGENS_CLEANUP_INTERVAL", raw)
    with pytest.raises(ValueError, match="IZGENS_CLEANUP_INTERVAL"):
        interval_from_env()


def test_the_scheduler_runs_the_cleanup_jobs(db: object, monkeypatch: pytest.MonkeyPatch) -> None:
    """By default it runs izgens.cleanup.run_jobs, as the cleanup function does."""
    from izgens import cleanup

    ran = threading.Event()
    monkeypatch.setitem(cleanup.JOBS, "probe", lambda: ran.set() or {"probed": 1})
    scheduler = CleanupScheduler(60).start()
    try:
        assert ran.wait(10)
    finally:
        scheduler.stop()
