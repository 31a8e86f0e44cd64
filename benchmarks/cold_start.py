"""Cold start of each HTTP function: a fresh process imports the handler and answers one
Function URL (payload v2) event. Compared, in the same run, with a bare FastAPI+Mangum echo.

Two cases per function: an unauthenticated request (answered 401 without touching the
database or JWT library), and the first authenticated request that reads the database
(the JWKS is fetched over HTTP from a local server, as from Supabase on a cold Lambda).
Targets: <= 1.3x and <= 1.6x the baseline. Median of N interleaved runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import median, migrated_database, table  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "7"))
ROOT = Path(__file__).resolve().parents[1]

# (function, unauthenticated request, authenticated request that reads the database)
CASES: dict[str, tuple[tuple[str, str], tuple[str, str] | None]] = {
    "account": (("GET", "/me"), ("GET", "/me")),
    "generate": (("GET", "/quote"), ("GET", "/quote")),
    "status": (("GET", "/generations"), ("GET", "/generations")),
    "privacy_export": (("GET", f"/privacy/exports/{uuid.uuid4()}"), ("GET", f"/privacy/exports/{uuid.uuid4()}")),
    "plisio_webhook": (("POST", "/plisio/callback"), None),
}

BASELINE = '''
from fastapi import FastAPI
from mangum import Mangum
app = FastAPI()
@app.get("/echo")
def echo(msg: str = "") -> dict:
    return {"msg": msg}
handler = Mangum(app, lifespan="off")
'''

RUNNER = '''
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
'''


def event(method: str, path: str, token: str | None, body: str = "") -> dict:
    headers = {"host": "abc.lambda-url.us-east-1.on.aws", "x-forwarded-proto": "https"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    if body:
        headers["content-type"] = "application/json"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "msg=hi" if path == "/echo" else "",
        "headers": headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "domainPrefix": "abc",
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "bench"},
            "requestId": "bench",
            "routeKey": "$default",
            "stage": "$default",
            "time": "25/Nov/2026:00:00:00 +0000",
            "timeEpoch": 0,
        },
        "body": body,
        "isBase64Encoded": False,
    }


def timed(module: str, ev: dict, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", RUNNER, module, json.dumps(ev), BASELINE],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )
    elapsed = (time.perf_counter() - started) * 1000
    if out.returncode != 0:
        raise RuntimeError(f"{module} failed: {out.stderr[-2000:]}")
    return elapsed, out.stdout.strip()


class JwksServer:
    def __init__(self, jwks: dict) -> None:
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()


def main() -> None:
    import importlib.util

    import psycopg

    from izgens_local.devauth import DevSigner

    functions = [f for f in CASES if importlib.util.find_spec(f"izgens_functions.{f}.handler")]
    with migrated_database() as url:
        signer = DevSigner("pending")
        jwks = JwksServer(signer.jwks())
        signer.issuer = f"{jwks.base}/auth/v1"
        user = uuid.uuid4()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("insert into auth.users (id, email) values (%s, 'bench@example.com')", (user,))
        env = dict(os.environ)
        env.update({
            "IZGENS_ENV": "test", "DATABASE_URL": url, "SUPABASE_URL": jwks.base,
            "LOG_LEVEL": "WARNING", "PYTHONDONTWRITEBYTECODE": "0",
            "PLISIO_SECRET_KEY": "bench-plisio", "BYTEPLUS_API_KEY": "bench-bp",
            "CALLBACK_SIGNING_KEY": "bench-callback-key-0000000000000000",
        })
        samples: dict[str, list[float]] = {"baseline": []}
        plan: list[tuple[str, str, dict]] = [("baseline", "-", event("GET", "/echo", None))]
        for fn in functions:
            (m1, p1), auth = CASES[fn]
            body = "{}" if m1 == "POST" else ""
            plan.append((f"{fn} unauthenticated", f"izgens_functions.{fn}.handler", event(m1, p1, None, body)))
            if auth:
                token = signer.token(user, "bench@example.com")
                plan.append((f"{fn} first authenticated + DB", f"izgens_functions.{fn}.handler",
                             event(auth[0], auth[1], token)))
        for _ in range(2):  # warm the bytecode caches once, untimed
            for _, module, ev in plan:
                timed(module, ev, env)
        statuses: dict[str, str] = {}
        for _ in range(RUNS):
            for name, module, ev in plan:
                ms, status = timed(module, ev, env)
                samples.setdefault(name, []).append(ms)
                statuses[name] = status
        jwks.stop()
    base = median(samples["baseline"])
    rows = [["bare FastAPI+Mangum echo", f"{base:.0f}", "1.00", "", statuses["baseline"]]]
    for name, _, _ in plan[1:]:
        ratio = median(samples[name]) / base
        target = 1.6 if "authenticated +" in name else 1.3
        verdict = "ok" if ratio <= target else "MISSED"
        rows.append([name, f"{median(samples[name]):.0f}", f"{ratio:.2f}",
                     f"<= {target} {verdict}", statuses[name]])
    sys.stdout.write(f"\nCold start (fresh process: import + first request), median of {RUNS}\n")
    sys.stdout.write(table(["case", "ms", "ratio", "target", "status"], rows) + "\n")


if __name__ == "__main__":
    main()
