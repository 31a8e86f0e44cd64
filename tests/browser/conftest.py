"""Fixtures for the tests that run the whole system: `make dev` in a subprocess, and
Debian's Chromium driven by Playwright (`executable_path="/usr/bin/chromium"`; never
`playwright install`, which downloads a browser from elsewhere).

On failure a test leaves under `test-artifacts/`: a screenshot of each page, the page's
console messages, and the `make dev` log.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.devstack import ROOT, DevStack

ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("IZGENS_CHROMIUM", "/usr/bin/chromium"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


def failed(request: pytest.FixtureRequest) -> bool:
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def artifact(request: pytest.FixtureRequest, suffix: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
    return ARTIFACTS / f"{name}{suffix}"


def keep_log(request: pytest.FixtureRequest, stack: DevStack, label: str = "") -> None:
    if stack.log_path is not None and stack.log_path.exists():
        shutil.copyfile(stack.log_path, artifact(request, f"{label}.make-dev.log"))


@pytest.fixture
def fresh_stack(request: pytest.FixtureRequest) -> Iterator[DevStack]:
    """A `make dev` of its own (not started yet): free ports, empty state directory."""
    stack = DevStack.fresh()
    try:
        yield stack
    finally:
        if failed(request):
            keep_log(request, stack)
        stack.remove()


@pytest.fixture(scope="package")
def running_stack() -> Iterator[DevStack]:
    """A started `make dev` shared by the console and README tests, stopped when this
    folder's tests are done (not at the end of the session: it runs cleanup every second)."""
    stack = DevStack.fresh()
    try:
        yield stack.start()
    finally:
        stack.remove()


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("IZGENS_BROWSER_REQUIRED"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser(chromium: Path) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), headless=True)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def context(browser: Any, running_stack: DevStack, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A fresh browser profile (empty localStorage); screenshots of its pages on failure."""
    ctx = browser.new_context(base_url=running_stack.base, viewport={"width": 1200, "height": 900})
    ctx.set_default_timeout(15_000)
    messages: list[str] = []

    def record(page: Any) -> None:
        page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))

    ctx.on("page", record)
    try:
        yield ctx
    finally:
        if failed(request):
            for number, page in enumerate(ctx.pages):
                # a crashed page cannot be photographed; keep the rest
                with contextlib.suppress(Exception):
                    page.screenshot(
                        path=str(artifact(request, f".page{number}.png")), full_page=True
                    )
            artifact(request, ".console.txt").write_text("\n".join(messages) + "\n")
            keep_log(request, running_stack)
        ctx.close()
