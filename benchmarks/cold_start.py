"""Cold start of each HTTP function: a fresh process imports the handler and answers one
Function URL (payload v2) event. Compared, in the same run, with a bare FastAPI+Mangum echo.

Two cases per function: an unauthenticated request (answered 401 without touching the
database or JWT library), and the first authenticated request that reads the database
(the JWKS is fetched over HTTP from a local server, as from Supabase on a cold Lambda).
Targets: <= 1.15x and <= 1.45x the baseline. Median of N interleaved runs. One more case:
`status`'s first read of a completed generation (a presigned video link) with the role's
credentials from the container credentials endpoint, as on Lambda with SnapStart (no
AWS_ACCESS_KEY_ID; the link must be signed without importing boto3).

    python benchmarks/cold_start.py              # from this virtualenv (the default)
    python benchmarks/cold_start.py --artifacts  # from the packaged artifacts
    python benchmarks/cold_start.py --imports    # the ten largest imports of each case

`--artifacts` builds host-platform artifacts with `infra/package.py --host` (into
`.package/host`, apart from the Lambda build; its dependency cache makes a rebuild take
seconds; `--no-build` reuses the zips as they are), unzips each, and runs every case in a
virtualenv without site-packages whose `sys.path` holds only that unzipped artifact
(`python -I -S -B`: no user site, no PYTHON* variables, and no bytecode written, as on
Lambda's read-only /var/task). The baseline then runs the same way from a directory holding
only FastAPI and Mangum, installed and precompiled by the same packager code at the same
versions. `video_stored` and `cleanup` are measured too (no target: they are not on a
user's path). The table adds each artifact's zip and unzipped size, and each case's CPU time
(user + system of the child), which a busy machine inflates far less than wall time; the
targets are judged on wall time, as in the default mode. Each round runs the cases in a new
random order.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import median, migrated_database, table, write_result  # noqa: E402

from tests.events import load  # noqa: E402
from tests.support.servers import QuietHandler, StubServer  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
ROOT = Path(__file__).resolve().parents[1]
PACKAGER = ROOT / "infra" / "package.py"

# (function, unauthenticated request, authenticated request that reads the database)
CASES: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    "account": (("GET", "/me"), ("GET", "/me")),
    "generate": (("GET", "/quote"), ("GET", "/quote")),
    "status": (("GET", "/generations"), ("GET", "/generations")),
    "privacy_export": (
        ("GET", f"/privacy/exports/{uuid.uuid4()}"),
        ("GET", f"/privacy/exports/{uuid.uuid4()}"),
    ),
    "plisio_webhook": (("POST", "/plisio/callback"), None),
}
UNAUTHENTICATED_TARGET = 1.15
AUTHENTICATED_TARGET = 1.45
COMPLETED_READ = "status first read of a completed generation, SnapStart credentials"
# the functions without HTTP, measured from their artifacts only: (label, event)
BACKGROUND_CASES: dict[str, tuple[str, dict]] = {
    "video_stored": ("S3 test event", load("s3_test_event")),
    "cleanup": ("every job, empty database", load("scheduled")),
}

BASELINE = """
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
@app.get("/echo")
def echo(msg: str = "") -> dict:
    return {"msg": msg}
handler = Mangum(app, lifespan="off")
"""

RUNNER = """
import json, sys, importlib
event = json.loads(sys.argv[2])
if sys.argv[1] == "-":
    ns = {}
    exec(compile(sys.argv[3], "baseline", "exec"), ns)
    handler = ns["handler"]
else:
    handler = importlib.import_module(sys.argv[1]).handler
class Context:
    aws_request_id = "bench-request-0001"
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    def get_remaining_time_in_millis(self): return 10000
response = handler(event, Context())
sys.stdout.write(str(response["statusCode"]))
"""

# argv: code directory, event, baseline source ("" = import `handler` from the directory)
ARTIFACT_RUNNER = """
import json, sys
assert not any("site-packages" in p for p in sys.path), sys.path
sys.path.insert(0, sys.argv[1])
event = json.loads(sys.argv[2])
if sys.argv[3]:
    ns = {}
    exec(compile(sys.argv[3], "baseline", "exec"), ns)
    handler = ns["handler"]
else:
    from handler import handler
class Context:
    aws_request_id = "bench-request-0001"
    function_name = "bench"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:000000000000:function:bench"
    def get_remaining_time_in_millis(self): return 10000
response = handler(event, Context())
status = response.get("statusCode", "ok") if isinstance(response, dict) else "ok"
sys.stdout.write(str(status))
"""


def event(method: str, path: str, token: str | None, body: str = "", query: str = "") -> dict:
    """A Function URL request (tests/events), with the token and the JSON body if given."""
    headers = {}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body:
        headers["content-type"] = "application/json"
    return load(
        "function_url",
        method=method,
        path=path,
        query=query,
        headers=headers,
        body=body or None,
    )


def _run(command: list[str], env: dict[str, str], what: str) -> tuple[float, float, str]:
    """Wall and CPU (user + system) milliseconds of one child process, and its status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=False, cwd=ROOT)
    elapsed = (time.perf_counter() - started) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    if out.returncode != 0:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    # the runner writes the status last, after any log lines the function printed
    return elapsed, cpu, (out.stdout.strip().splitlines() or [""])[-1]


def timed(module: str, ev: dict, env: dict[str, str]) -> tuple[float, str]:
    command = [sys.executable, "-c", RUNNER, module, json.dumps(ev), BASELINE]
    elapsed, _, status = _run(command, env, module)
    return elapsed, status


def json_server(document: dict) -> StubServer:
    """`document` as JSON at every path (a JWKS, the container credentials endpoint)."""
    body = json.dumps(document).encode()

    class Handler(QuietHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.reply(200, body, "application/json")

    return StubServer(Handler).start()


# --- from the packaged artifacts -----------------------------------------------------------


@dataclass
class Unpacked:
    """One artifact, unzipped: the directory a case runs from, and its sizes."""

    name: str
    code: Path
    zip_bytes: int | None
    unzipped_bytes: int


def _packager() -> object:
    sys.path.insert(0, str(PACKAGER.parent))
    try:
        import package  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(PACKAGER.parent))
    return package


def build_artifacts(names: list[str], out: Path, *, build: bool) -> dict[str, Path]:
    """<out>/<name>.zip for each function, built for this machine unless `build` is False
    and they all exist already."""
    zips = {name: out / f"{name}.zip" for name in names}
    if build or not all(path.is_file() for path in zips.values()):
        command = [sys.executable, str(PACKAGER), "--host", "--out", str(out), *names]
        result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
        if result.returncode != 0:
            raise SystemExit(f"infra/package.py failed:\n{result.stdout}\n{result.stderr}")
    missing = [str(path) for path in zips.values() if not path.is_file()]
    if missing:
        raise SystemExit(f"no artifact at {', '.join(missing)}")
    return zips


def unpack(name: str, artifact: Path, into: Path) -> Unpacked:
    target = into / name
    with zipfile.ZipFile(artifact) as zf:
        unzipped = sum(info.file_size for info in zf.infolist())
        zf.extractall(target)
    return Unpacked(name, target, artifact.stat().st_size, unzipped)


def baseline_directory(out: Path) -> Unpacked:
    """FastAPI and Mangum alone, installed for this machine and precompiled the way the
    packager installs every artifact's dependencies, at this environment's versions."""
    package = _packager()
    reqs = [f"{d}=={importlib.metadata.version(d)}" for d in ("fastapi", "mangum")]
    with tempfile.TemporaryDirectory() as tmp:
        deps = package.install_dependencies(  # type: ignore[attr-defined]
            reqs,
            cache=out / ".cache",
            host=True,
            constraints=package._constraints_file(Path(tmp)),  # type: ignore[attr-defined]
            python=sys.executable,
        )
    size = sum(p.stat().st_size for p in deps.rglob("*") if p.is_file())
    return Unpacked("baseline", deps, None, size)


def clean_python(directory: Path) -> Path:
    """A virtualenv with nothing installed (and -S keeps even its site-packages away)."""
    venv.EnvBuilder(with_pip=False, system_site_packages=False, clear=True).create(directory)
    return directory / "bin" / "python"


def timed_artifact(
    python: Path, code: Path, ev: dict, env: dict[str, str], baseline: str = ""
) -> tuple[float, float, str]:
    command = [str(python), "-I", "-S", "-B", "-c", ARTIFACT_RUNNER, str(code), json.dumps(ev)]
    return _run([*command, baseline], env, code.name)


def _mb(size: int | None) -> str:
    return "" if size is None else f"{size / 1_000_000:.1f}"


def run_artifacts(url: str, jwks_base: str, token: str, out: Path, *, build: bool) -> str:
    http = [f for f in CASES if (ROOT / "functions" / f / "handler.py").is_file()]
    background = [f for f in BACKGROUND_CASES if (ROOT / "functions" / f / "handler.py").is_file()]
    zips = build_artifacts(http + background, out, build=build)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(out),
        "IZGENS_ENV": "test",
        "DATABASE_URL": url,
        "SUPABASE_URL": jwks_base,
        "LOG_LEVEL": "WARNING",
        "S3_BUCKET": "izgens-bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "PLISIO_SECRET_KEY": "bench-plisio",
        "BYTEPLUS_API_KEY": "bench-bp",
        "CALLBACK_SIGNING_KEY": "bench-callback-key-0000000000000000",
    }
    with tempfile.TemporaryDirectory(prefix="izgens-bench-artifacts-") as tmp:
        work = Path(tmp)
        python = clean_python(work / "venv")
        base = baseline_directory(out)
        unpacked = {name: unpack(name, path, work / "task") for name, path in zips.items()}
        # (label, code directory, event, baseline source, target, sizes of)
        plan: list[tuple[str, Path, dict, str, float | None, Unpacked]] = [
            (
                "baseline",
                base.code,
                event("GET", "/echo", None, query="msg=hi"),
                BASELINE,
                None,
                base,
            )
        ]
        for fn in http:
            (m1, p1), auth = CASES[fn]
            body = "{}" if m1 == "POST" else ""
            plan.append(
                (
                    f"{fn} unauthenticated",
                    unpacked[fn].code,
                    event(m1, p1, None, body),
                    "",
                    UNAUTHENTICATED_TARGET,
                    unpacked[fn],
                )
            )
            if auth:
                plan.append(
                    (
                        f"{fn} first authenticated + DB",
                        unpacked[fn].code,
                        event(auth[0], auth[1], token),
                        "",
                        AUTHENTICATED_TARGET,
                        unpacked[fn],
                    )
                )
        for fn in background:
            label, ev = BACKGROUND_CASES[fn]
            plan.append((f"{fn} {label}", unpacked[fn].code, ev, "", None, unpacked[fn]))

        for _ in range(2):  # warm the page cache once, untimed
            for _, code, ev, source, _, _ in plan:
                timed_artifact(python, code, ev, env, source)
        samples: dict[str, list[float]] = {}
        cpu: dict[str, list[float]] = {}
        statuses: dict[str, str] = {}
        shuffler = random.Random(8)
        for _ in range(RUNS):
            # a new order every round, so no case always follows the same one: in a fixed
            # order the baseline (always first) measured slower than functions importing more
            for name, code, ev, source, _, _ in shuffler.sample(plan, len(plan)):
                ms, cpu_ms, status = timed_artifact(python, code, ev, env, source)
                samples.setdefault(name, []).append(ms)
                cpu.setdefault(name, []).append(cpu_ms)
                statuses[name] = status
    baseline_ms = median(samples["baseline"])
    baseline_cpu = median(cpu["baseline"])
    rows = [
        [
            "bare FastAPI+Mangum echo",
            f"{baseline_ms:.0f}",
            "1.00",
            f"{baseline_cpu:.0f}",
            "1.00",
            "",
            statuses["baseline"],
            "",
            _mb(base.unzipped_bytes),
        ]
    ]
    figures: dict[str, dict[str, float | str | None]] = {}
    for name, _, _, _, target, sizes in plan[1:]:
        ratio = median(samples[name]) / baseline_ms
        verdict = "" if target is None else f"<= {target} {'ok' if ratio <= target else 'MISSED'}"
        figures[name] = {
            "ms": median(samples[name]),
            "ratio": ratio,
            "cpu_ratio": median(cpu[name]) / baseline_cpu,
            "target": target,
        }
        rows.append(
            [
                name,
                f"{median(samples[name]):.0f}",
                f"{ratio:.2f}",
                f"{median(cpu[name]):.0f}",
                f"{median(cpu[name]) / baseline_cpu:.2f}",
                verdict,
                statuses[name],
                _mb(sizes.zip_bytes),
                _mb(sizes.unzipped_bytes),
            ]
        )
    write_result(
        "cold_start_artifacts",
        {"mode": "artifacts", "runs": RUNS, "baseline_ms": baseline_ms, "cases": figures},
    )
    title = (
        f"\nCold start from the packaged artifacts ({out}, host platform; clean virtualenv "
        f"with only the unzipped artifact; fresh process: import + first request), "
        f"median of {RUNS}\n"
    )
    headers = [
        "case",
        "ms",
        "ratio",
        "cpu ms",
        "cpu ratio",
        "target",
        "status",
        "zip MB",
        "unzip MB",
    ]
    return title + table(headers, rows) + "\n"


# --- from this virtualenv (the default) ---------------------------------------------------


def imports_by_package(stderr: str) -> list[tuple[str, float]]:
    """`-X importtime` self times summed per top-level package, largest first: what a cold
    start pays for, by the name one would have to import lazily to avoid it."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line.removeprefix("import time:").split("|", 2)
        root = name.strip().split(".")[0]
        totals[root] = totals.get(root, 0.0) + int(self_us) / 1000
    return sorted(totals.items(), key=lambda item: -item[1])


def import_report(
    plan: list[tuple[str, str, dict]], env_of: Callable[[str], dict[str, str]], top: int = 10
) -> str:
    """One `-X importtime` run of every case (after the timed rounds: bytecode is cached)."""
    lines = ["\nLargest imports per case (self ms summed per top-level package, one run)\n"]
    for name, module, ev in plan:
        command = [sys.executable, "-X", "importtime", "-c", RUNNER, module, json.dumps(ev)]
        out = subprocess.run(
            [*command, BASELINE], env=env_of(name), capture_output=True, text=True, check=False
        )
        ranked = imports_by_package(out.stderr)
        total = sum(ms for _, ms in ranked)
        shown = ", ".join(f"{root} {ms:.0f}" for root, ms in ranked[:top])
        lines.append(f"{name} (all imports {total:.0f} ms): {shown}")
    return "\n".join(lines) + "\n"


def run_in_place(
    url: str,
    jwks_base: str,
    token: str,
    completed: tuple[str, str],
    credentials: str,
    *,
    imports: bool = False,
) -> str:
    import importlib.util

    functions = [f for f in CASES if importlib.util.find_spec(f"izgens_functions.{f}.handler")]
    env = dict(os.environ)
    env.update(
        {
            "IZGENS_ENV": "test",
            "DATABASE_URL": url,
            "SUPABASE_URL": jwks_base,
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "0",
            "PLISIO_SECRET_KEY": "bench-plisio",
            "BYTEPLUS_API_KEY": "bench-bp",
            "CALLBACK_SIGNING_KEY": "bench-callback-key-0000000000000000",
        }
    )
    samples: dict[str, list[float]] = {"baseline": []}
    plan: list[tuple[str, str, dict]] = [
        ("baseline", "-", event("GET", "/echo", None, query="msg=hi"))
    ]
    snapstart = {
        k: v for k, v in env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    }
    snapstart |= {
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": credentials,
        "AWS_CONTAINER_AUTHORIZATION_TOKEN": "bench-token",
        "S3_BUCKET": "izgens-bench",
        "AWS_REGION": "us-east-1",
    }
    for fn in functions:
        (m1, p1), auth = CASES[fn]
        body = "{}" if m1 == "POST" else ""
        module = f"izgens_functions.{fn}.handler"
        plan.append((f"{fn} unauthenticated", module, event(m1, p1, None, body)))
        if auth:
            plan.append((f"{fn} first authenticated + DB", module, event(auth[0], auth[1], token)))
    plan.append((COMPLETED_READ, "izgens_functions.status.handler", event("GET", *completed)))

    def env_of(name: str) -> dict[str, str]:
        return snapstart if name == COMPLETED_READ else env

    for _ in range(2):  # warm the bytecode caches once, untimed
        for name, module, ev in plan:
            timed(module, ev, env_of(name))
    statuses: dict[str, str] = {}
    shuffler = random.Random(8)
    for _ in range(RUNS):
        # a new order every round (see run_artifacts)
        for name, module, ev in shuffler.sample(plan, len(plan)):
            ms, status = timed(module, ev, env_of(name))
            samples.setdefault(name, []).append(ms)
            statuses[name] = status
    base = median(samples["baseline"])
    rows = [["bare FastAPI+Mangum echo", f"{base:.0f}", "1.00", "", statuses["baseline"]]]
    figures: dict[str, dict[str, float | str]] = {}
    for name, _, _ in plan[1:]:
        ratio = median(samples[name]) / base
        target = (
            AUTHENTICATED_TARGET
            if "authenticated +" in name or name == COMPLETED_READ
            else UNAUTHENTICATED_TARGET
        )
        verdict = "ok" if ratio <= target else "MISSED"
        figures[name] = {"ms": median(samples[name]), "ratio": ratio, "target": target}
        rows.append(
            [
                name,
                f"{median(samples[name]):.0f}",
                f"{ratio:.2f}",
                f"<= {target} {verdict}",
                statuses[name],
            ]
        )
    write_result(
        "cold_start",
        {"mode": "virtualenv", "runs": RUNS, "baseline_ms": base, "cases": figures},
    )
    title = f"\nCold start (fresh process: import + first request), median of {RUNS}\n"
    report = title + table(["case", "ms", "ratio", "target", "status"], rows) + "\n"
    return report + (import_report(plan, env_of) if imports else "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--artifacts",
        action="store_true",
        help="run each function from its packaged artifact in a clean virtualenv",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / ".package" / "host",
        help="where the host-platform artifacts are built (default: .package/host)",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="with --artifacts: reuse the zips already in --out instead of rebuilding",
    )
    parser.add_argument(
        "--imports",
        action="store_true",
        help="also print the ten largest imports of every case (python -X importtime)",
    )
    args = parser.parse_args(argv)

    import psycopg

    from izgens_local.devauth import DevSigner

    with migrated_database() as url:
        signer = DevSigner("pending")
        jwks = json_server(signer.jwks())
        signer.issuer = f"{jwks.base}/auth/v1"
        user = uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "insert into auth.users (id, email) values (%s, 'bench@example.com')", (user,)
            )
            # the completed generation is another user's: the history case reads an empty page
            owner = uuid.uuid4()
            conn.execute(
                "insert into auth.users (id, email) values (%s, 'owner@example.com')", (owner,)
            )
            conn.execute("select izgens.ensure_profile(%s)", (owner,))
            generation = conn.execute(
                "insert into public.generations (user_id, status, prompt, model, resolution,"
                " ratio, duration, cost, idempotency_key, request_hash, provider_task_id,"
                " video_key, completed_at)"
                " values (%s, 'completed', 'p', 'seedance-1-0-pro-fast-251015', '720p', '16:9',"
                " 5, 16, 'k', 'h', 'cgt-bench', 'videos/' || %s || '/x.mp4', now()) returning id",
                (owner, str(owner)),
            ).fetchone()[0]  # type: ignore[index]
        token = signer.token(user, "bench@example.com")
        owner_token = signer.token(owner, "owner@example.com")
        # Lambda's container credentials endpoint (SnapStart): one JSON answer to any GET
        credentials = json_server(
            {
                "AccessKeyId": "ASIABENCH",
                "SecretAccessKey": "bench-secret",
                "Token": "bench-session",
                "Expiration": "2099-01-01T00:00:00Z",
            }
        )
        completed = f"/generations/{generation}"
        try:
            if args.artifacts:
                report = run_artifacts(
                    url, jwks.base, token, args.out.resolve(), build=not args.no_build
                )
            else:
                report = run_in_place(
                    url,
                    jwks.base,
                    token,
                    (completed, owner_token),
                    credentials.base + "/creds",
                    imports=args.imports,
                )
        finally:
            jwks.stop()
            credentials.stop()
    sys.stdout.write(report)


if __name__ == "__main__":
    main()
