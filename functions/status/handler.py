"""The `status` function: history, one generation, delete, and the provider callback.

A status read is one SQL round trip unless the generation is in flight and was not checked
with the provider in the last few seconds.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Query, Request, Response

from izgens.generations import GenerationView, Lifecycle
from izgens.http import CurrentUser, blocking, create_app, lambda_handler, problem_responses
from izgens.paging import DEFAULT_LIMIT, MAX_LIMIT, Page

app = create_app("status", title="izgens status", description="History, status, delete, callbacks.")

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=200)]


async def lifecycle() -> Lifecycle:
    return Lifecycle.from_settings()


Life = Annotated[Lifecycle, Depends(lifecycle)]


@app.get("/generations", response_model=Page[GenerationView])
async def history(
    user: CurrentUser, life: Life, limit: Limit = DEFAULT_LIMIT, cursor: Cursor = None
) -> Page[GenerationView]:
    return await blocking(life.history, user.id, limit=limit, cursor=cursor)


@app.get("/generations/{generation_id}", response_model=GenerationView)
async def get_generation(generation_id: uuid.UUID, user: CurrentUser, life: Life) -> GenerationView:
    return await blocking(life.read, user.id, generation_id)


@app.delete("/generations/{generation_id}", status_code=204)
async def delete_generation(generation_id: uuid.UUID, user: CurrentUser, life: Life) -> Response:
    await blocking(life.delete, user.id, generation_id)
    return Response(status_code=204)


@app.post("/callbacks/byteplus", include_in_schema=True, responses=problem_responses(409))
async def byteplus_callback(
    request: Request, life: Life, token: Annotated[str, Query(min_length=1, max_length=200)]
) -> dict[str, bool]:
    """The body is a hint only: the token is checked before the body is read, then the
    task is re-read from the API. Any body that is not a JSON object naming a task is 4xx."""
    generation_id = life.callback_generation(token)
    task_id = _task_id(await request.body())
    await blocking(life.handle_callback, generation_id, task_id)
    return {"ok": True}


def _task_id(raw: bytes) -> str:
    """The task the body names (BytePlus ids are like `cgt-20250101…`): it may reach the
    provider's URL, so only plain id characters."""
    import re

    from izgens import jsonbody
    from izgens.errors import InvalidRequest

    body = jsonbody.parse(raw)
    task_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(task_id, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,200}", task_id):
        raise InvalidRequest("the callback names no task")
    return task_id


handler = lambda_handler(app)
