"""The simulator as a Starlette app: the task API, the signed files, and the `/sim/`
test helpers."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import string
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from izgens.catalog import MODELS
from izgens_local.byteplus_sim.billing import reference_video_ms
from izgens_local.byteplus_sim.engine import SimEngine
from izgens_local.byteplus_sim.errors import CODE_BY_STATUS, ApiError, invalid, missing, not_found
from izgens_local.byteplus_sim.files import denied, load_video, sign, tiny_png
from izgens_local.byteplus_sim.models import SimConfig, SimTask
from izgens_local.byteplus_sim.scenarios import (
    marker_delay,
    marker_rejection,
    marker_status,
    markers,
)
from izgens_local.byteplus_sim.validation import validate

API_PREFIX = "/api/v3"
TASKS_PATH = f"{API_PREFIX}/contents/generations/tasks"


def _request_id() -> str:
    """Shaped like the provider's: 021 + milliseconds + random hex."""
    return f"021{int(time.time() * 1000)}{secrets.token_hex(16)}"


def _task_id() -> str:
    alphabet = string.ascii_lowercase + string.digits
    suffix = "".join(secrets.choice(alphabet) for _ in range(5))
    return f"cgt-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{suffix}"


def create_app(config: SimConfig | None = None) -> Starlette:
    """The simulator as an ASGI app (`app.state.engine` holds its state).

    The engine's thread starts with the app's lifespan, or with the first API request when
    the app is mounted somewhere that runs no lifespan; it stops with the lifespan.
    """
    config = config or SimConfig()
    engine = SimEngine(config)
    video = load_video()
    png = tiny_png()
    api_key = config.api_key.encode()

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key)

    def ok(body: Any, request_id: str, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status, headers={"X-Request-Id": request_id})

    async def create_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            engine.count_create(None)
            return invalid("body", "the request body must be a JSON object").response(request_id)
        callback = body.get("callback_url")
        engine.count_create(callback if isinstance(callback, str) else None)
        try:
            model = body.get("model")
            if model is None or model == "":
                raise missing("model")
            if not isinstance(model, str):
                raise invalid("model", "expected a string")
            info = MODELS.get(config.endpoints.get(model, model))
            if info is None:
                raise ApiError(
                    404,
                    "InvalidEndpointOrModel.NotFound",
                    f"The model or endpoint {model} does not exist or you do not have access "
                    "to it.",
                    "model",
                )
            if not engine.check_rpm(model):
                code = (
                    "RateLimitExceeded.EndpointRPMExceeded"
                    if model.startswith("ep-")
                    else "ModelAccountRpmRateLimitExceeded"
                )
                raise ApiError(429, code)
            accepted = validate(body, info)
            marks = markers(accepted.content.prompt)
            rejection = marker_rejection(marks, accepted.content)
            if rejection is not None:
                raise rejection
            videos = await reference_video_ms(accepted.content.video_urls, info)
        except ApiError as exc:
            return exc.response(request_id)

        delay = marker_delay(marks.get("delay"), config.delay)
        queued_for = delay * min(max(config.queued_share, 0.0), 1.0)
        task = SimTask(
            id=_task_id(),
            model=model,
            info=info,
            status="queued",
            created_at=time.time(),
            updated_at=time.time(),
            prompt=accepted.content.prompt,
            callback_url=accepted.callback_url,
            base_url=config.public_url or str(request.base_url),
            resolution=accepted.resolution,
            ratio=accepted.ratio,
            duration=accepted.duration,
            frames=accepted.frames,
            seed=accepted.seed,
            generate_audio=accepted.generate_audio,
            draft=accepted.draft,
            service_tier=accepted.service_tier,
            execution_expires_after=accepted.execution_expires_after,
            priority=accepted.priority,
            safety_identifier=accepted.safety_identifier,
            return_last_frame=accepted.return_last_frame,
            queued_for=queued_for,
            run_for=delay - queued_for,
            fail_code=marks.get("fail") or None,
            video_url_override=marks.get("url") or None,
            expire="expire" in marks,
            input_video_ms=videos,
            video_urls=accepted.content.video_urls,
        )
        if "fail" in marks and not task.fail_code:
            task.fail_code = "InternalServiceError"
        try:
            engine.add(task, after=config.timeout_sleep if "timeout" in marks else 0.0)
        except ApiError as exc:
            return exc.response(request_id)
        if "timeout" in marks:
            await asyncio.sleep(config.timeout_sleep)
            return ok({"id": task.id}, request_id)
        if "http-after" in marks:
            status = marker_status(marks["http-after"])
            code = CODE_BY_STATUS.get(status, "InternalServiceError")
            return ApiError(status, code).response(request_id)
        return ok({"id": task.id}, request_id)

    async def list_tasks(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        query = request.query_params
        try:
            page_num = _page_param(query.get("page_num"), "page_num", 1)
            page_size = _page_param(query.get("page_size"), "page_size", 10)
        except ApiError as exc:
            return exc.response(request_id)
        items = engine.listing(
            status=query.get("filter.status"),
            model=query.get("filter.model"),
            service_tier=query.get("filter.service_tier"),
            task_ids=set(query.getlist("filter.task_ids")),
        )
        start = (page_num - 1) * page_size
        return ok({"items": items[start : start + page_size], "total": len(items)}, request_id)

    async def get_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        task_id = request.path_params["task_id"]
        data = engine.snapshot(task_id)
        if data is None:
            return not_found(task_id).response(request_id)
        return ok(data, request_id)

    async def delete_task(request: Request) -> Response:
        engine.start()
        request_id = _request_id()
        if not authorized(request):
            return ApiError(401, "AuthenticationError").response(request_id)
        try:
            engine.delete(request.path_params["task_id"])
        except ApiError as exc:
            return exc.response(request_id)
        return ok({}, request_id)

    def signed_file(request: Request, path: str, data: bytes, media_type: str) -> Response:
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            expires = 0
        sig = request.query_params.get("sig", "")
        if not hmac.compare_digest(sig.encode(), sign(config.url_secret, path, expires).encode()):
            return denied("SignatureDoesNotMatch", "The request signature does not match.")
        if expires < time.time():
            return denied("AccessDenied", "Request has expired.")
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})

    async def video_file(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        return signed_file(request, f"/sim/videos/{task_id}.mp4", video, "video/mp4")

    async def frame_file(request: Request) -> Response:
        task_id = request.path_params["task_id"]
        return signed_file(request, f"/sim/frames/{task_id}.png", png, "image/png")

    async def sim_tasks(request: Request) -> Response:
        return JSONResponse(engine.inspect())

    async def sim_callbacks(request: Request) -> Response:
        return JSONResponse({"deliveries": engine.delivery_log()})

    async def sim_reset(request: Request) -> Response:
        engine.reset()
        return JSONResponse({})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine.start()
        try:
            yield
        finally:
            engine.stop()

    routes = [
        Route(TASKS_PATH, create_task, methods=["POST"]),
        Route(TASKS_PATH, list_tasks, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", get_task, methods=["GET"]),
        Route(TASKS_PATH + "/{task_id}", delete_task, methods=["DELETE"]),
        Route("/sim/videos/{task_id}.mp4", video_file, methods=["GET"]),
        Route("/sim/frames/{task_id}.png", frame_file, methods=["GET"]),
        Route("/sim/tasks", sim_tasks, methods=["GET"]),
        Route("/sim/callbacks", sim_callbacks, methods=["GET"]),
        Route("/sim/reset", sim_reset, methods=["POST"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.engine = engine
    return app


def _page_param(value: str | None, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid(name, "expected an integer") from None
    if not 1 <= number <= 500:
        raise invalid(name, "must be within [1, 500]")
    return number
