"""The console's reference upload in presigned-PUT mode (`S3_UPLOAD_METHOD=put`, as on
Supabase Storage) in a real browser: the file goes to the bucket as a bare PUT, signed for
its exact type and length, and a generation can use it."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from izgens.storage import Storage
from tests.browser.devstack import DevStack
from tests.browser.test_console import PNG


@pytest.fixture(scope="module")
def put_stack() -> Iterator[DevStack]:
    stack = DevStack.fresh(S3_UPLOAD_METHOD="put")
    try:
        yield stack.start()
    finally:
        stack.remove()


def test_console_uploads_by_put(browser: Any, put_stack: DevStack) -> None:
    ctx = browser.new_context(base_url=put_stack.base)
    ctx.set_default_timeout(15_000)
    try:
        page = ctx.new_page()
        sent: list[tuple[str, str]] = []
        page.on("request", lambda r: sent.append((r.method, r.url)))
        page.goto("/")
        page.get_by_test_id("email").fill(f"put-{uuid.uuid4().hex[:8]}@example.com")
        page.get_by_test_id("sign-in").click()
        page.get_by_test_id("confirm-age").click()
        expect(page.get_by_test_id("age")).to_have_text("age confirmed")
        page.get_by_test_id("reference-file").set_input_files(
            {"name": "reference.png", "mimeType": "image/png", "buffer": PNG}
        )
        expect(page.get_by_test_id("references")).to_contain_text("references/")
        expect(page.get_by_test_id("problem")).to_be_hidden()
        puts = [url for method, url in sent if method == "PUT" and url.startswith(put_stack.s3)]
        assert (
            len(puts) == 1 and "X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost" in puts[0]
        )
        found = re.search(r"references/\S+", page.get_by_test_id("reference").inner_text())
        assert found, page.get_by_test_id("reference").inner_text()
        key = found.group(0)
        bucket = Storage(
            "izgens-dev",
            endpoint_url=put_stack.s3,
            region="us-east-1",
            access_key_id="dev",
            secret_access_key="dev-s3-secret",
        )
        stored = bucket.head(key)
        assert stored is not None and (stored.content_type, stored.size) == ("image/png", len(PNG))
    finally:
        ctx.close()
