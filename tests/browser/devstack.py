"""`make dev` as a newcomer runs it, in a subprocess: free ports, its state in a temp dir
(never the developer's), stopped with Ctrl-C (SIGINT to its process group).

Also the bookkeeping the stack test needs to prove a clean stop: every process the stack
started (its process group, and Postgres, which `pg_ctl` detaches), identified by pid and
start time so a reused pid is never mistaken for a survivor.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from izgens.config import Settings
from tests.support.servers import free_port

__all__ = ["ROOT", "DevStack", "port_is_free", "process_tree"]

ROOT = Path(__file__).resolve().parents[2]
BYTEPLUS_KEY = "stack-test-byteplus-key"
PLISIO_SECRET = "stack-test-plisio-secret"


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, pgid, start time) of a live process, from /proc."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after "pid (comm) "
    if fields[0] == "Z":
        return None  # a zombie is gone, only not yet reaped
    return int(fields[1]), int(fields[2]), int(fields[19])


def _all_pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def process_tree(roots: set[int], pgid: int | None = None) -> set[tuple[int, int]]:
    """(pid, start time) of `roots`, every member of process group `pgid`, and all their
    descendants."""
    table = {pid: info for pid in _all_pids() if (info := _stat(pid)) is not None}
    found = {pid for pid in roots if pid in table}
    if pgid is not None:
        found |= {pid for pid, (_, group, _) in table.items() if group == pgid}
    grew = True
    while grew:
        children = {pid for pid, (ppid, _, _) in table.items() if ppid in found} - found
        found |= children
        grew = bool(children)
    return {(pid, table[pid][2]) for pid in found}


def alive(processes: set[tuple[int, int]]) -> set[tuple[int, int]]:
    """The members of `processes` still running (same pid, same start time)."""
    left = set()
    for pid, started in processes:
        info = _stat(pid)
        if info is not None and info[2] == started:
            left.add((pid, started))
    return left


def _clean_environment() -> dict[str, str]:
    """os.environ without anything that configures izgens (the test session sets some)."""
    names = {(info.alias or name).upper() for name, info in Settings.model_fields.items()}
    return {
        k: v
        for k, v in os.environ.items()
        if k.upper() not in names and not k.startswith(("IZGENS_", "AWS_", "PG"))
    }


@dataclass
class DevStack:
    """One `make dev` process; `start()` waits for /health, `interrupt()` is Ctrl-C."""

    state_dir: Path
    ports: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @classmethod
    def fresh(cls, **extra_env: str) -> DevStack:
        state = Path(tempfile.mkdtemp(prefix="izgens-test-dev-"))
        ports = {
            "IZGENS_DEV_PORT": free_port(),
            "IZGENS_BYTEPLUS_SIM_PORT": free_port(),
            "IZGENS_PLISIO_SIM_PORT": free_port(),
            "IZGENS_S3_PORT": free_port(),
        }
        return cls(state_dir=state, ports=ports, extra_env=extra_env)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.ports['IZGENS_DEV_PORT']}"

    @property
    def byteplus(self) -> str:
        return f"http://127.0.0.1:{self.ports['IZGENS_BYTEPLUS_SIM_PORT']}/api/v3"

    @property
    def plisio(self) -> str:
        return f"http://127.0.0.1:{self.ports['IZGENS_PLISIO_SIM_PORT']}/api/v1"

    @property
    def s3(self) -> str:
        return f"http://127.0.0.1:{self.ports['IZGENS_S3_PORT']}"

    @property
    def pgdata(self) -> Path:
        return self.state_dir / "pg"

    def environment(self) -> dict[str, str]:
        env = _clean_environment()
        env.update({k: str(v) for k, v in self.ports.items()})
        env.update(
            {
                "IZGENS_STATE_DIR": str(self.state_dir),
                "BYTEPLUS_API_KEY": BYTEPLUS_KEY,
                "PLISIO_SECRET_KEY": PLISIO_SECRET,
                "IZGENS_BYTEPLUS_SIM_DELAY": "1",
                "IZGENS_CLEANUP_INTERVAL": "1",
                "PYTHONUNBUFFERED": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 90.0) -> DevStack:
        self.log_path = self.state_dir / f"make-dev-{int(time.time() * 1000)}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                ["make", "dev"],
                cwd=ROOT,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, as a terminal would give it
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"make dev exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return self
            time.sleep(0.1)
        raise RuntimeError(f"make dev did not answer /health in {timeout} s: {self.tail()}")

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 3000) -> str:
        return self.log()[-chars:]

    def postmaster(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self) -> set[tuple[int, int]]:
        """Everything this stack runs now: its process group and Postgres with its backends."""
        assert self.proc is not None
        roots = {self.proc.pid}
        if (pid := self.postmaster()) is not None:
            roots.add(pid)
        return process_tree(roots, pgid=self.proc.pid)

    def interrupt(self, timeout: float = 30.0) -> int | None:
        """Ctrl-C: SIGINT to the process group; returns make's exit code (None if it hung)."""
        if self.proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        """Last resort after a failed test: nothing may outlive the session."""
        if self.proc is not None and self.proc.poll() is None:
            if self.interrupt(20) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        pid = self.postmaster()
        if pid is not None and _stat(pid) is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def remove(self) -> None:
        self.kill()
        shutil.rmtree(self.state_dir, ignore_errors=True)
