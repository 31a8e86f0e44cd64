"""`make dev`'s ports: each configurable, a port in use refused with a clear message before
anything starts, and a service swapped for the real one needs no local port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from izgens.cli import main
from izgens_local import stack
from tests.support.servers import free_port

VARIABLES = {
    "IZGENS_DEV_PORT": "dev server",
    "IZGENS_BYTEPLUS_SIM_PORT": "Seedance simulator",
    "IZGENS_PLISIO_SIM_PORT": "Plisio simulator",
    "IZGENS_S3_PORT": "S3 emulator",
}


@pytest.fixture
def dev_ports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, int]]:
    """Free ports for every part, a throwaway state dir, and no real services configured."""
    ports = {name: free_port() for name in VARIABLES}
    for name, port in ports.items():
        monkeypatch.setenv(name, str(port))
    monkeypatch.setenv("IZGENS_STATE_DIR", str(tmp_path))
    for name in ("BYTEPLUS_BASE_URL", "PLISIO_BASE_URL", "S3_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    yield ports


@pytest.mark.parametrize("variable", list(VARIABLES))
def test_a_port_in_use_is_refused_before_anything_starts(
    variable: str,
    dev_ports: dict[str, int],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    port = dev_ports[variable]
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        assert main(["dev"]) == 2
    err = capsys.readouterr().err
    assert f"port {port} ({VARIABLES[variable]}) is already in use" in err
    assert f"{variable}=<port>" in err
    assert not (tmp_path / "pg").exists(), "Postgres was started before the port check"


def test_a_bad_port_value_is_a_usage_error(
    dev_ports: dict[str, int], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IZGENS_S3_PORT", "eighty")
    assert main(["dev"]) == 2
    assert "IZGENS_S3_PORT must be a port number" in capsys.readouterr().err


def test_a_real_service_needs_no_local_port(
    dev_ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYTEPLUS_BASE_URL", "https://ark.example.com/api/v3")

    def reached() -> None:
        raise RuntimeError("past the port checks")

    monkeypatch.setattr(stack, "start_database", reached)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", dev_ports["IZGENS_BYTEPLUS_SIM_PORT"]))
        holder.listen()
        with pytest.raises(RuntimeError, match="past the port checks"):
            with stack.running_stack(stack.DevPorts.from_env()):
                pass


def test_the_banner_names_every_part_and_marks_real_services(
    dev_ports: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    ports = stack.DevPorts.from_env()
    simulated = stack.dev_environment(ports, "postgresql://dev")
    for name, value in simulated.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PLISIO_BASE_URL", "https://api.plisio.net/api/v1")
    fake = SimpleNamespace(ports=ports, pg=SimpleNamespace(url="postgresql://dev"))
    fake.base = f"http://127.0.0.1:{ports.dev}"
    text = stack._banner(fake, "TOKEN123", 200, 10)  # type: ignore[arg-type]
    assert f"http://127.0.0.1:{ports.byteplus}/api/v3   (Seedance simulator)" in text
    assert "https://api.plisio.net/api/v1   (REAL service, PLISIO_BASE_URL)" in text
    assert f"http://127.0.0.1:{ports.s3}   (moto S3 emulator)" in text
    assert f"console           http://127.0.0.1:{ports.dev}/" in text
    assert "export TOKEN=TOKEN123" in text
    assert f"curl -s -X POST http://127.0.0.1:{ports.dev}/generate/generations" in text
    assert "Idempotency-Key" in text and "every 10 s" in text
