"""Fault injection: the generation stack of tests/generation (dev server over real HTTP,
moto S3 with its event pump, the Seedance simulator, a fresh Postgres database per test),
plus a proxy in front of the simulator that fails chosen requests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from izgens import generations
from izgens.byteplus import BytePlusClient
from izgens.config import reset_settings
from tests.faults.proxy import FaultProxy
from tests.generation.conftest import API_KEY, GenEnv, env, gen_s3, gen_sim, stack

__all__ = ["env", "gen_s3", "gen_sim", "proxy", "stack"]


@pytest.fixture
def proxy(env: GenEnv) -> Iterator[FaultProxy]:
    """Every provider call of this test (create, get, list, and the video download, whose
    URL the simulator builds from the proxy's address) goes through a fault proxy. Reads
    are retried as in production, with a short backoff so the test stays quick."""
    fault = FaultProxy.to(env.sim.url).start()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BYTEPLUS_BASE_URL", f"{fault.url}/api/v3")
        patch.setenv("BYTEPLUS_VIDEO_HOSTS", fault.url.removeprefix("http://"))
        reset_settings()
        generations.provider_client.set(
            BytePlusClient(f"{fault.url}/api/v3", API_KEY, timeout=1.0, backoff=0.05)
        )
        try:
            yield fault
        finally:
            generations.reset_provider()
    fault.stop()
    reset_settings()
