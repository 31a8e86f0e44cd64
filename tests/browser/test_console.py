"""The dev console in a real browser (Debian's headless Chromium) against `make dev`:
sign in → confirm age → buy credits on the Plisio simulator's invoice page → upload a
reference → generate → the status moves → the video plays → Recreate → delete; then the
privacy buttons. It calls only the public routes, as a frontend would."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

from playwright.sync_api import expect

from tests.browser.devstack import DevStack
from tests.support.mp4 import make_mp4

V20_FAST = "dreamina-seedance-2-0-fast-260128"

# 1×1 PNG
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
)
VIDEO_PLAYS = """() => {
  const v = document.querySelector('[data-testid="generation"] video');
  return v !== null && v.readyState >= 2 && v.videoWidth > 0;
}"""


def pack_credits(button: Any) -> int:
    match = re.search(r"Buy (\d+) credits", button.inner_text())
    assert match, button.inner_text()
    return int(match.group(1))


def test_console_sign_in_buy_generate_play_delete(context: Any, running_stack: DevStack) -> None:
    page = context.new_page()
    page.goto("/")
    email = f"console-{uuid.uuid4().hex[:8]}@example.com"

    # sign in: a dev user, its token kept in localStorage
    page.get_by_test_id("email").fill(email)
    page.get_by_test_id("sign-in").click()
    expect(page.get_by_test_id("whoami")).to_contain_text(email)
    expect(page.get_by_test_id("balance")).to_have_text("0")
    assert "access_token" in page.evaluate("localStorage.getItem('izgens.console.session')")

    # a refused call shows its problem+json, the page keeps working
    page.get_by_test_id("prompt").fill("a generation before the age gate")
    page.get_by_test_id("generate").click()
    expect(page.get_by_test_id("problem")).to_contain_text("age_not_confirmed")

    page.get_by_test_id("confirm-age").click()
    expect(page.get_by_test_id("age")).to_have_text("age confirmed")
    expect(page.get_by_test_id("problem")).to_be_hidden()

    # buy a pack on the Plisio simulator's invoice page, as a buyer would
    buy = page.locator("[data-pack]").first
    credits = pack_credits(buy)
    buy.click()
    expect(page.get_by_test_id("purchase-status")).not_to_be_empty()
    with page.expect_popup() as popup:
        page.get_by_test_id("invoice-link").click()
    invoice = popup.value
    invoice.get_by_role("button", name="Pay", exact=True).click()
    expect(invoice.locator("body")).to_contain_text("completed")
    invoice.close()
    expect(page.get_by_test_id("balance")).to_have_text(str(credits), timeout=20_000)
    expect(page.get_by_test_id("ledger")).to_contain_text("purchase")

    # and one more through the console's simulator button (what automation uses)
    first_purchase = page.get_by_test_id("purchase-id").inner_text()
    buy.click()
    expect(page.get_by_test_id("purchase-id")).not_to_have_text(first_purchase)
    page.get_by_test_id("sim-pay").click()
    expect(page.get_by_test_id("balance")).to_have_text(str(2 * credits))
    expect(page.get_by_test_id("purchase-status")).to_have_text("completed")

    # a reference: the browser posts the file straight to the bucket (presigned POST)
    page.get_by_test_id("reference-file").set_input_files(
        {"name": "reference.png", "mimeType": "image/png", "buffer": PNG}
    )
    expect(page.get_by_test_id("references")).to_contain_text("references/")

    # generate, watch the status move, play the video
    page.get_by_test_id("prompt").fill("a paper boat drifting down a mountain river")
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("generation").first
    expect(card).to_have_attribute("data-status", "completed", timeout=30_000)
    timeline = card.get_by_test_id("timeline").inner_text()
    assert timeline.endswith("completed") and " → " in timeline, timeline
    page.wait_for_function(VIDEO_PLAYS, timeout=20_000)
    assert page.evaluate('document.querySelector("[data-testid=generation] video").muted')
    cost = int(page.evaluate("Number(document.querySelector('#balance').textContent)"))
    assert cost < 2 * credits

    # Recreate: a second generation with the same parameters; then delete both
    card.get_by_test_id("recreate").click()
    expect(page.get_by_test_id("generation")).to_have_count(2)
    expect(page.get_by_test_id("generation").first).to_have_attribute(
        "data-status", "completed", timeout=30_000
    )
    for _ in range(2):
        page.get_by_test_id("generation").first.get_by_test_id("delete").click()
        expect(page.get_by_test_id("notice")).to_contain_text("Deleted generation")
    expect(page.get_by_test_id("generation")).to_have_count(0)
    page.reload()
    expect(page.get_by_test_id("whoami")).to_contain_text(email)  # still signed in
    expect(page.get_by_test_id("generation")).to_have_count(0)

    # a 2.x generation with a reference video: the form offers what the model takes, and
    # the quote follows every change and prices the video's seconds; it is what is charged
    page.get_by_test_id("model").select_option(V20_FAST)
    expect(page.get_by_test_id("mode")).to_have_value("reference")
    assert "1080p" not in page.get_by_test_id("resolution").inner_text()  # 720p at most
    expect(page.get_by_test_id("seed")).to_be_hidden()
    expect(page.get_by_test_id("audio")).to_be_visible()
    page.get_by_test_id("duration").fill("4")
    quote = page.get_by_test_id("quote")
    expect(quote).to_contain_text("4 s)")
    bare = int(quote.get_attribute("data-credits") or 0)
    page.get_by_test_id("reference-file").set_input_files(
        {"name": "clip.mp4", "mimeType": "video/mp4", "buffer": make_mp4(3.5, audio=False)}
    )
    expect(page.get_by_test_id("reference")).to_have_attribute("data-kind", "video")
    expect(quote).to_contain_text("+ 3.5 s of reference video")
    with_video = int(quote.get_attribute("data-credits") or 0)
    assert with_video > bare > 0
    page.get_by_test_id("duration").fill("6")
    expect(quote).to_contain_text("6 s +")
    quoted = int(quote.get_attribute("data-credits") or 0)
    assert quoted > with_video
    page.get_by_test_id("prompt").fill("a kite over the dunes --dur 15")
    expect(quote).to_contain_text("cannot be priced")
    page.get_by_test_id("prompt").fill("a kite over the dunes, the same motion as the clip")
    expect(quote).to_have_attribute("data-credits", str(quoted))
    before = int(page.get_by_test_id("balance").inner_text())
    page.get_by_test_id("generate").click()
    card = page.get_by_test_id("generation").first
    expect(card).to_contain_text(V20_FAST)
    expect(card).to_have_attribute("data-status", "completed", timeout=30_000)
    expect(page.get_by_test_id("balance")).to_have_text(str(before - quoted))
    expect(page.get_by_test_id("references")).to_be_empty()

    # privacy: an export to open, a deletion requested and canceled
    page.get_by_test_id("export").click()
    expect(page.get_by_test_id("export-link")).to_be_visible(timeout=20_000)
    export_url = page.get_by_test_id("export-link").get_attribute("href")
    assert export_url and export_url.startswith(running_stack.s3)
    exported = page.request.get(export_url)
    assert exported.ok and exported.json()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("delete-account").click()
    expect(page.get_by_test_id("deletion-status")).to_contain_text("deletion scheduled for")
    page.get_by_test_id("cancel-deletion").click()
    expect(page.get_by_test_id("notice")).to_have_text("Account deletion canceled")
    expect(page.get_by_test_id("deletion-status")).to_have_text("no deletion scheduled")
    expect(page.get_by_test_id("problem")).to_be_hidden()
