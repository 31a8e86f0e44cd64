"""The container app over real HTTP: every function under its prefix, no dev route, one edge,
and the cleanup schedule running in-process for as long as the ASGI lifespan does."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from starlette.routing import Mount

from izgens.db import Database
from izgens_local.servers import ServerThread
from tests.conftest import DevServer
from tests.support.users import make_user

PROBLEM = "application/problem+json"

# function -> (method, path, body) of a route that needs a token (401 without one)
PROTECTED = {
    "generate": ("GET", "/quote", None),
    "status": ("GET", "/generations", None),
    "account": ("GET", "/me", None),
    "privacy_export": ("POST", "/privacy/exports", None),
}


def _problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body = response.json()
    assert body["code"] == code and body["status"] == status, body
    return body


def test_every_http_function_is_mounted_under_its_name() -> None:
    from izgens.container import HTTP_FUNCTIONS, app, load_function
    from izgens_local.devserver import HTTP_FUNCTIONS as DEV_SERVER_FUNCTIONS

    assert set(HTTP_FUNCTIONS) == set(DEV_SERVER_FUNCTIONS)
    mounts = {r.path: r.app for r in app.routes if isinstance(r, Mount)}
    # the very app objects the Lambda handlers wrap, not copies
    assert mounts == {f"/{name}": load_function(name).app for name in HTTP_FUNCTIONS}


def test_each_function_answers_under_its_prefix(container: httpx.Client) -> None:
    from izgens.container import HTTP_FUNCTIONS, load_function

    for name in HTTP_FUNCTIONS:
        answer = container.get(f"/{name}/openapi.json")
        assert answer.status_code == 200, (name, answer.text)
        assert answer.json()["info"]["title"] == load_function(name).app.title
    for name, (method, path, body) in PROTECTED.items():
        answer = container.request(method, f"/{name}{path}", json=body)
        _problem(answer, 401, "unauthenticated")
        assert answer.headers["www-authenticate"] == "Bearer"
    # the webhook verifies the body's signature before anything else: refused, not "no route"
    refused = container.post("/plisio_webhook/plisio/callback", json={"status": "completed"})
    assert 400 <= refused.status_code < 500 and refused.status_code not in (404, 405), refused.text
    assert refused.headers["content-type"].startswith(PROBLEM)


def test_a_dev_token_is_accepted(
    container: httpx.Client, dev_server: DevServer, db: Database
) -> None:
    user = make_user(db, "container@example.com", credits=7)
    auth = {"Authorization": f"Bearer {dev_server.token(user, 'container@example.com')}"}

    me = container.get("/account/me", headers=auth)
    assert me.status_code == 200, me.text
    assert me.json()["user_id"] == str(user) and me.json()["balance"] == 7

    history = container.get("/status/generations", headers=auth)
    assert history.status_code == 200, history.text
    assert history.json() == {"items": [], "next_cursor": None}

    quote = container.get("/generate/quote", headers=auth)
    assert quote.status_code == 200, quote.text
    assert quote.json()["credits"] > 0

    unknown = container.get(f"/privacy_export/privacy/exports/{uuid.uuid4()}", headers=auth)
    _problem(unknown, 404, "not_found")

    forged = dev_server.token(user, None, claims={"aud": "someone-else"})
    _problem(
        container.get("/account/me", headers={"Authorization": f"Bearer {forged}"}),
        401,
        "unauthenticated",
    )


def test_no_dev_route_exists(container: httpx.Client) -> None:
    from izgens.container import app

    def paths(routes: list, prefix: str = "") -> list[str]:
        found = []
        for route in routes:
            path = prefix + getattr(route, "path", "")
            found.append(path)
            if isinstance(route, Mount):
                found += paths(route.routes, path)
        return found

    every = paths(app.routes)
    assert not [p for p in every if p.startswith(("/dev", "/auth", "/static", "/purchases"))]
    assert "/" not in every

    user = str(uuid.uuid4())
    for method, path, body in [
        ("POST", "/dev/users", {"email": "intruder@example.com"}),
        ("POST", "/dev/credits", {"user_id": user, "credits": 1000}),
        ("POST", "/dev/plisio/pay", {"purchase_id": user, "status": "completed"}),
        ("GET", "/auth/v1/.well-known/jwks.json", None),
        ("DELETE", f"/auth/v1/admin/users/{user}", None),
        ("GET", "/", None),
        ("GET", "/static/index.html", None),
    ]:
        answer = container.request(method, path, json=body)
        _problem(answer, 404, "not_found")


def test_health_reads_the_database(container: httpx.Client) -> None:
    answer = container.get("/health")
    assert answer.status_code == 200, answer.text
    assert answer.json()["ok"] is True


def test_health_fails_without_a_database(serve: Callable[..., ServerThread]) -> None:
    """Railway routes traffic to a new deployment only once /health is 200."""
    from izgens.db import reset_database

    server = serve(DATABASE_URL="postgresql://nobody@127.0.0.1:9/nothing")
    reset_database()
    _problem(httpx.get(f"{server.url}/health", timeout=30), 503, "database_unavailable")


def test_the_edge_runs_once(container: httpx.Client) -> None:
    """The container's edge middleware does the request id, headers and limits; the mounted
    apps' own edges step aside (no doubled headers, the same request id everywhere)."""
    answer = container.get("/account/me", headers={"X-Request-Id": "container-test-0001"})
    assert answer.headers.get_list("x-request-id") == ["container-test-0001"]
    assert answer.json()["request_id"] == "container-test-0001"
    assert answer.headers.get_list("x-content-type-options") == ["nosniff"]
    assert answer.headers.get_list("strict-transport-security") != []
    too_big = container.post(
        "/generate/generations",
        content=b"x" * (64 * 1024 + 1),
        headers={"content-type": "application/json", "Idempotency-Key": "k"},
    )
    _problem(too_big, 413, "payload_too_large")


def test_the_schedule_runs_cleanup_and_stops_on_shutdown(
    serve: Callable[..., ServerThread], db: Database
) -> None:
    from izgens.container import app

    db.execute(
        "insert into public.rate_limits (bucket, window_start, hits)"
        " values ('container-test', now() - interval '2 days', 1)"
    )
    server = serve(CLEANUP_INTERVAL_SECONDS="0.2")
    scheduler = app.state.cleanup_scheduler
    assert scheduler.running and scheduler.interval == 0.2

    deadline = time.monotonic() + 30
    while db.one("select 1 as left from public.rate_limits where bucket = 'container-test'"):
        assert time.monotonic() < deadline, "the rate_limits job never ran"
        time.sleep(0.1)
    while scheduler.runs < 1:  # the run that deleted it has finished
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert any(t.name == "izgens-cleanup-schedule" for t in threading.enumerate())

    server.stop()
    assert not scheduler.running
    assert not any(t.name == "izgens-cleanup-schedule" for t in threading.enumerate())
    runs = scheduler.runs
    time.sleep(0.5)
    assert scheduler.runs == runs  # nothing runs after shutdown


def test_interval_zero_turns_the_schedule_off(serve: Callable[..., ServerThread]) -> None:
    from izgens.container import app

    serve(CLEANUP_INTERVAL_SECONDS="0")
    assert app.state.cleanup_scheduler.enabled is False
    assert not app.state.cleanup_scheduler.running


def test_stop_waits_for_a_run_in_progress() -> None:
    from izgens.container import CleanupScheduler

    entered, finished = threading.Event(), threading.Event()

    def slow_run() -> None:
        entered.set()
        time.sleep(0.5)
        finished.set()

    scheduler = CleanupScheduler(60, slow_run, first_delay=0).start()
    assert entered.wait(5)
    scheduler.stop()
    assert finished.is_set() and scheduler.runs == 1 and not scheduler.running


def test_a_failing_run_does_not_end_the_schedule() -> None:
    from izgens.container import CleanupScheduler

    calls: list[float] = []

    def broken() -> None:
        calls.append(time.monotonic())
        raise RuntimeError("database down")

    scheduler = CleanupScheduler(0.05, broken, first_delay=0).start()
    deadline = time.monotonic() + 5
    while len(calls) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    scheduler.stop()
    assert scheduler.runs >= 3


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_interval_is_refused(value: str) -> None:
    from pydantic import ValidationError

    from izgens.config import Settings

    with pytest.raises(ValidationError):
        Settings.from_environ({"CLEANUP_INTERVAL_SECONDS": value})
    assert Settings.from_environ({}).cleanup_interval_seconds == 300


def test_cors_answers_the_configured_origin_only(serve: Callable[..., ServerThread]) -> None:
    """On AWS the Function URLs answer CORS; in the container the edge does (the dev
    server's very implementation), for CORS_ORIGINS. Every preflight: tests/security."""
    server = serve(CORS_ORIGINS="https://app.example.com")
    preflight = httpx.options(
        f"{server.url}/generate/generations",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
        },
    )
    assert preflight.status_code == 204, preflight.text
    assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()

    # error answers carry the headers too, or the browser hides the problem+json from the app
    denied = httpx.get(f"{server.url}/account/me", headers={"Origin": "https://app.example.com"})
    _problem(denied, 401, "unauthenticated")
    assert denied.headers["access-control-allow-origin"] == "https://app.example.com"
    assert "x-request-id" in denied.headers["access-control-expose-headers"].lower()

    other = httpx.get(f"{server.url}/account/me", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_no_cors_headers_without_cors_origins(container: httpx.Client) -> None:
    answer = container.get("/account/me", headers={"Origin": "https://app.example.com"})
    assert "access-control-allow-origin" not in answer.headers
    preflight = container.options(
        "/account/me",
        headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
