"""A function's artifact, alone, imports and answers a request.

Builds one function with `infra/package.py --host` (same code path as the Lambda build, but
wheels for this machine), unzips it, and runs it in a fresh virtualenv without site
packages, with only the unzipped artifact on sys.path: a dependency the packager missed is
an ImportError here rather than in production.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from tests.events import load

ROOT = Path(__file__).resolve().parents[2]
PACKAGER = ROOT / "infra" / "package.py"

# function -> (method, path) of a route that needs a user token, so that an anonymous call
# is answered (401) without a database
CANDIDATES = {
    "account": ("GET", "/me"),
    "status": ("GET", "/generations"),
    "privacy_export": ("POST", "/privacy/exports"),
    "generate": ("POST", "/generations"),
}

RUNNER = r"""
import json, os, sys, time
task = sys.argv[1]
assert not any("site-packages" in p for p in sys.path), sys.path
sys.path.insert(0, task)
started = time.perf_counter()
import handler
imported = time.perf_counter()

class Context:
    function_name = "izgens-artifact-test"
    function_version = "1"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:izgens-artifact-test"
    memory_limit_in_mb = 512
    aws_request_id = "artifact-test-request-1"
    log_group_name = "/aws/lambda/izgens-artifact-test"
    log_stream_name = "test"
    def get_remaining_time_in_millis(self):
        return 10_000

requests = json.loads(sys.argv[2])
anonymous = handler.handler(requests["anonymous"], Context())
answered = time.perf_counter()
forged = handler.handler(requests["forged"], Context())

# the heavy dependencies the first requests did not need must load from the artifact too
import importlib
loaded = {}
for name in ("psycopg", "jwt", "boto3", "pydantic_core", "fastapi", "mangum"):
    try:
        module = importlib.import_module(name)
    except ImportError:
        continue
    loaded[name] = module.__file__
try:
    import psycopg
    loaded["libpq"] = psycopg.pq.version()
except ImportError:
    pass
# boto3 with the service models the packager kept (and only those)
services = json.loads(sys.argv[3])
clients = {}
if services:
    import boto3
    import botocore.exceptions
    for service in services:
        client = boto3.client(service, region_name="us-east-1",
                              aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="x")
        clients[service] = client.meta.service_model.service_name
    try:
        boto3.client("dynamodb", region_name="us-east-1")
        clients["dynamodb"] = "present"
    except botocore.exceptions.UnknownServiceError:
        pass
print(json.dumps({
    "anonymous": anonymous, "forged": forged, "loaded": loaded, "clients": clients,
    "import_ms": round((imported - started) * 1000, 1),
    "first_request_ms": round((answered - imported) * 1000, 1),
}))
"""


def _pick_function() -> tuple[str, tuple[str, str]]:
    for name, route in CANDIDATES.items():
        if (ROOT / "functions" / name / "handler.py").is_file():
            return name, route
    pytest.skip("no HTTP function has a handler.py yet")


def _requests(method: str, path: str) -> dict[str, dict]:
    """The route as a Function URL request without a token, and with a forged one."""
    body = "{}" if method == "POST" else None
    headers = {"content-type": "application/json"}
    anonymous = load("function_url", method=method, path=path, headers=headers, body=body)
    forged = {**headers, "authorization": "Bearer not-a-jwt"}
    return {
        "anonymous": anonymous,
        "forged": load("function_url", method=method, path=path, headers=forged, body=body),
    }


def _problem(response: dict) -> dict:
    headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
    assert headers.get("content-type", "").startswith("application/problem+json"), headers
    body = response["body"]
    if response.get("isBase64Encoded"):  # Function URLs decode it before the client sees it
        body = base64.b64decode(body)
    return json.loads(body)


@pytest.mark.timeout(180)
def test_artifact_imports_and_answers_in_a_clean_virtualenv(tmp_path: Path) -> None:
    package = _packager()
    name, (method, path) = _pick_function()
    services = package.aws_services(package.third_party_imports(name)[2]) or set()
    out = tmp_path / "out"
    build = subprocess.run(
        [sys.executable, str(PACKAGER), "--host", "--out", str(out), name],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
        cwd=ROOT,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    assert f"{name} " in build.stdout  # the size table names the artifact
    artifact = out / f"{name}.zip"

    task = tmp_path / "task"
    with zipfile.ZipFile(artifact) as zf:
        names = zf.namelist()
        assert "handler.py" in names and "izgens/__init__.py" in names
        assert not any(n.startswith(("tests/", "functions/", "shared/")) for n in names)
        zf.extractall(task)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    environment = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "IZGENS_ENV": "prod",
        "SUPABASE_URL": "https://abcdefghij.supabase.co",
        "S3_BUCKET": "izgens-artifact-test",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:9/nothing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    # -I: ignore PYTHON* variables and the user site; -S: not even the venv's site-packages
    run = subprocess.run(
        [
            str(python),
            "-I",
            "-S",
            "-c",
            RUNNER,
            str(task),
            json.dumps(_requests(method, path)),
            json.dumps(sorted(services)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=tmp_path,
        env=environment,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])

    for key in ("anonymous", "forged"):
        response = result[key]
        assert response["statusCode"] == 401, response
        assert _problem(response)["code"] == "unauthenticated", response
    for module, location in result["loaded"].items():
        if module != "libpq":
            assert str(location).startswith(str(task)), (module, location)
    assert {"fastapi", "mangum", "jwt"} <= set(result["loaded"]), result["loaded"]
    # the config's secrets overlay needs secretsmanager everywhere; unused models are gone
    assert "secretsmanager" in services
    assert result["clients"] == {s: s for s in services}, result["clients"]


def _packager():
    sys.path.insert(0, str(PACKAGER.parent))
    try:
        import package  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PACKAGER.parent))
    return package


def test_zips_are_reproducible(tmp_path: Path) -> None:
    """Same inputs, same bytes: unchanged functions are neither re-uploaded nor re-published."""
    package = _packager()
    source = tmp_path / "src"
    (source / "pkg").mkdir(parents=True)
    (source / "pkg" / "a.py").write_text("A = 1\n")
    (source / "b.txt").write_text("b\n")
    first, second = tmp_path / "1.zip", tmp_path / "2.zip"
    package.write_zip(first, package._files(source))
    (source / "b.txt").touch()  # a newer mtime must not change the archive
    package.write_zip(second, package._files(source))
    assert first.read_bytes() == second.read_bytes()


def test_dependencies_are_read_from_the_code() -> None:
    package = _packager()
    name, _ = _pick_function()
    reqs = {r.split("==")[0].split("[")[0].lower() for r in package.requirements(name, pin=True)}
    # an HTTP function: the app stack, the database driver, token checks, the secrets client
    assert {"fastapi", "mangum", "pydantic", "psycopg", "pyjwt", "boto3"} <= reqs, reqs
    assert not reqs & {"pytest", "moto", "uvicorn", "cfn-lint", "aws-sam-translator"}, reqs
    pinned = package.requirements(name, pin=True)
    assert all("==" in r for r in pinned), pinned
    assert any(r.startswith("psycopg[binary]") for r in pinned), pinned


def test_deploy_template_points_at_the_artifacts(tmp_path: Path) -> None:
    from cfnlint.decode import decode_str

    package = _packager()
    names = {p.name for p in (ROOT / "functions").iterdir() if p.is_dir() and p.name[0] not in "._"}
    written = package.write_template(tmp_path, names)
    assert written is not None
    tmpl, errors = decode_str(written.read_text())
    assert not errors
    code_uris = {
        logical_id: r["Properties"]["CodeUri"]
        for logical_id, r in tmpl["Resources"].items()
        if r["Type"] == "AWS::Serverless::Function"
    }
    assert sorted(code_uris.values()) == sorted(f"{n}.zip" for n in names)
    # nothing but the CodeUris changed
    original, _ = decode_str((ROOT / "infra" / "template.yaml").read_text())
    for logical_id in code_uris:
        original["Resources"][logical_id]["Properties"]["CodeUri"] = code_uris[logical_id]
    assert tmpl == original
