"""`python -m izgens_local.plisio_sim`: the simulator on IZGENS_PLISIO_SIM_PORT."""

from __future__ import annotations

from izgens_local.plisio_sim.server import main

if __name__ == "__main__":
    main()
