"""The simulator under uvicorn until interrupted, as `python -m izgens_local.plisio_sim` runs it."""

from __future__ import annotations

import contextlib
import logging
import os

from izgens_local.plisio_sim.routes import create_app
from izgens_local.plisio_sim.state import SimConfig


def run(host: str = "127.0.0.1", port: int = 8002, config: SimConfig | None = None) -> None:
    """Serve the simulator until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(config),
        host=host,
        port=port,
        lifespan="off",
        ws="none",
        log_level="info",
    )


def main() -> None:
    """`python -m izgens_local.plisio_sim`: port and key from the dev stack's variables."""
    logging.basicConfig(level=logging.INFO)
    with contextlib.suppress(KeyboardInterrupt):
        run(
            "127.0.0.1",
            int(os.environ.get("IZGENS_PLISIO_SIM_PORT", "8002")),
            SimConfig(secret_key=os.environ.get("PLISIO_SECRET_KEY") or "dev-plisio-secret"),
        )
