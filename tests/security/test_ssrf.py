"""SSRF through the provider's video URL, system-wide: a generation whose provider task
"succeeds" with a video URL pointing inside our network (metadata service, private and
loopback addresses, odd spellings of them, allowlisted names that resolve inward, and
redirects from an allowed host) is failed and refunded, and nothing there is ever
contacted. The unit rules live in tests/storage/test_storage_copy.py; this proves the
generation path reaches them (izgens.storage.copy_from_url is the only fetch)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from izgens.config import reset_settings
from tests.security.support import Stack
from tests.support.servers import QuietHandler, StubServer
from tests.support.users import balance


class Recorder:
    """A loopback HTTP server that records every request; `redirect_to` turns it into a
    redirector."""

    def __init__(self, redirect_to: str | None = None) -> None:
        self.hits: list[str] = []
        recorder = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib name
                recorder.hits.append(self.path)
                if recorder.redirect_to:
                    self.reply(302, headers={"Location": recorder.redirect_to})
                else:
                    self.reply(200, b"\x00\x00\x00\x0cftypisom", "video/mp4")

        self.redirect_to = redirect_to
        self.server = StubServer(Handler).start()
        self.host = self.server.host

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture
def inside() -> Iterator[Recorder]:
    """Stands for something inside the network that must never be reached."""
    recorder = Recorder()
    yield recorder
    recorder.stop()


@pytest.fixture
def redirectors(inside: Recorder) -> Iterator[dict[str, Recorder]]:
    hops = {
        "metadata": Recorder("http://169.254.169.254/latest/meta-data/iam/"),
        "loopback port": Recorder(f"http://{inside.host}/v.mp4"),
        "private": Recorder("https://10.1.2.3/v.mp4"),
        "scheme change": Recorder("file:///etc/passwd"),
    }
    yield hops
    for hop in hops.values():
        hop.stop()


def test_video_urls_into_our_network_are_refused_never_fetched_and_refunded(
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    inside: Recorder,
    redirectors: dict[str, Recorder],
) -> None:
    sim_host = stack.sim.url.removeprefix("http://")
    # the redirectors are allowed hosts (as the provider's CDN is), and `localhost` is an
    # allowed name: its address must still be refused
    allowed = [sim_host, "localhost", *(hop.host for hop in redirectors.values())]
    monkeypatch.setenv("BYTEPLUS_VIDEO_HOSTS", ",".join(allowed))
    reset_settings()
    urls = {
        "metadata (AWS)": "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "metadata over https": "https://169.254.169.254/latest/meta-data/",
        "metadata (GCP name)": "http://metadata.google.internal/computeMetadata/v1/",
        "private 10/8": "https://10.0.0.7/video.mp4",
        "private 192.168/16": "https://192.168.1.1/video.mp4",
        "loopback, other port": f"http://{inside.host}/v.mp4",
        "loopback as a decimal": "http://2130706433/v.mp4",
        "loopback as hex": "http://0x7f000001/v.mp4",
        "loopback shortened": "http://127.1/v.mp4",
        "unspecified address": "http://0.0.0.0/v.mp4",
        "allowed name, loopback address": "https://localhost/v.mp4",
        "credentials in the URL": f"http://user:pass@{sim_host}/v.mp4",
        "file scheme": "file:///etc/passwd",
        "gopher": f"gopher://{inside.host}/_INFO",
        **{f"redirect to {why}": f"http://{hop.host}/v.mp4" for why, hop in redirectors.items()},
    }
    started = {}
    for why, url in urls.items():
        response = stack.api.post(
            "/generate/generations",
            json={"prompt": f"a harmless prompt [sim:url={url}]"},
            headers={**stack.auth, "Idempotency-Key": uuid.uuid4().hex},
        )
        assert response.status_code == 202, (why, response.text)
        started[why] = response.json()
    balance_before = 1_000_000
    for why, gen in started.items():
        row = stack.wait_for(
            lambda gen=gen: stack.db.one(
                "select * from public.generations where id = %s and status in"
                " ('failed', 'completed')",
                (gen["id"],),
            )
        )
        assert row["status"] == "failed", why
        assert row["error_code"] == "video_refused", (why, row["error_message"])
        ledger = stack.db.all(
            "select reason, delta from public.credit_ledger where ref = %s order by id",
            (gen["id"],),
        )
        assert [(r["reason"], r["delta"]) for r in ledger] == [
            ("generation", -gen["cost"]),
            ("generation_refund", gen["cost"]),
        ], why
    assert inside.hits == []  # nothing inside was ever asked
    for why, hop in redirectors.items():
        assert len(hop.hits) == 1, why  # the allowed host was asked once; its hop refused
    assert balance(stack.db, stack.user) == balance_before
    objects = stack.db.one(
        "select count(*) as n from public.generations where video_key is not null"
    )
    assert objects is not None and objects["n"] == 0
