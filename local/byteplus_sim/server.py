"""The simulator on a real socket: under uvicorn in the foreground (`run`) or on a thread
(`SimServer`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from izgens_local.byteplus_sim.engine import SimEngine
from izgens_local.byteplus_sim.models import SimConfig
from izgens_local.byteplus_sim.routes import API_PREFIX, create_app
from izgens_local.servers import ServerThread


def run(host: str, port: int, config: SimConfig) -> None:
    """Serve the simulator with uvicorn until interrupted (the dev stack's entry point)."""
    import uvicorn  # dev-only dependency

    uvicorn.run(create_app(config), host=host, port=port, log_level="warning", ws="none")


class SimServer:
    """The simulator on a real socket in a background thread; for tests and scripts.

    with SimServer(SimConfig(delay=0.2)) as sim:
        client = BytePlusClient(sim.api_url, sim.config.api_key)
    """

    def __init__(self, config: SimConfig, host: str = "127.0.0.1", port: int = 0) -> None:
        self.config = config
        self.app = create_app(config)
        self.engine: SimEngine = self.app.state.engine
        self._server = ServerThread(
            self.app,
            port,
            host=host,
            name="byteplus-sim-server",
            log_config=None,
            log_level=None,
            access_log=True,
            http="h11",
            ws="none",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self.url = self._server.url
        self.api_url = self.url + API_PREFIX

    def start(self) -> SimServer:
        self._server.start(timeout=10)
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> SimServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def iter_tasks(self) -> Iterator[dict[str, Any]]:
        """Every task the simulator holds (deleted ones included), as `/sim/tasks` shows."""
        yield from self.engine.inspect()["tasks"]
