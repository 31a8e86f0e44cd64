"""The `generate` function: quotes, reference uploads, generations and Recreate.

Thin by design: parse, authorize, call `izgens.generations`, shape the response.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from izgens import catalog
from izgens.generations import GenerationView, Lifecycle, request_hash
from izgens.http import CurrentUser, client_ip, create_app, lambda_handler, problem_responses

app = create_app("generate", title="izgens generate", description="Quotes, uploads, generations.")

IdempotencyKey = Annotated[
    str, Header(alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$")
]


class Quote(BaseModel):
    credits: int
    model: str
    resolution: str
    ratio: str
    duration: int
    generate_audio: bool


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    content_type: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    bytes: Annotated[int, Field(ge=1, le=10**12)]


class Upload(BaseModel):
    """`method` POST: a form of `fields` plus the file; PUT: the bare file with `headers`."""

    key: str
    method: Literal["POST", "PUT"]
    url: str
    fields: dict[str, str]
    headers: dict[str, str]
    expires_at: str


class RecreateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    seed: Annotated[int, Field(ge=-1, le=catalog.MAX_SEED)] | None = None


def lifecycle() -> Lifecycle:
    return Lifecycle.from_settings()


@app.get("/quote", response_model=Quote)
def get_quote(
    user: CurrentUser,
    model: Annotated[str | None, Query(max_length=100)] = None,
    resolution: Annotated[str | None, Query(max_length=20)] = None,
    ratio: Annotated[str | None, Query(max_length=20)] = None,
    duration: Annotated[int | None, Query(ge=-1, le=120)] = None,
    generate_audio: bool | None = None,
) -> Quote:
    spec = catalog.GenerationSpec(
        prompt="quote",
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        generate_audio=generate_audio,
    )
    spec, credits = lifecycle().quote(spec)
    return Quote(
        credits=credits,
        model=spec.model or catalog.DEFAULT_MODEL,
        resolution=spec.resolution or "",
        ratio=spec.ratio or "",
        duration=spec.duration or 0,
        generate_audio=bool(spec.generate_audio),
    )


@app.post("/uploads", status_code=201, response_model=Upload, responses=problem_responses(403))
def create_upload(body: UploadRequest, user: CurrentUser, request: Request) -> Upload:
    from izgens import uploads

    presigned = uploads.create_upload(
        user.id, body.content_type, body.bytes, client_ip=client_ip(request)
    )
    return Upload(
        key=presigned["key"],
        method=presigned["method"],
        url=presigned["url"],
        fields=presigned["fields"],
        headers=presigned["headers"],
        expires_at=presigned["expires_at"].isoformat(),
    )


@app.post(
    "/generations",
    status_code=202,
    response_model=GenerationView,
    responses=problem_responses(402, 403, 409),
)
def create_generation(
    body: catalog.GenerationSpec, user: CurrentUser, request: Request, key: IdempotencyKey
) -> GenerationView:
    life = lifecycle()
    gen = life.start(
        user.id,
        body,
        idempotency_key=key,
        body_hash=request_hash(body.model_dump(exclude_unset=True)),
        client_ip=client_ip(request),
    )
    return life.view(gen)


@app.post(
    "/generations/{generation_id}/recreate",
    status_code=202,
    response_model=GenerationView,
    responses=problem_responses(402, 403, 409),
)
def recreate(
    generation_id: uuid.UUID,
    body: RecreateRequest,
    user: CurrentUser,
    request: Request,
    key: IdempotencyKey,
) -> GenerationView:
    life = lifecycle()
    original = life.get(user.id, generation_id)
    spec = original.spec.model_copy(update={"seed": body.seed})
    document = {"recreate": str(generation_id), **body.model_dump(exclude_unset=True)}
    gen = life.start(
        user.id,
        spec,
        idempotency_key=key,
        body_hash=request_hash(document),
        client_ip=client_ip(request),
        recreated_from=original.id,
    )
    return life.view(gen)


handler = lambda_handler(app)
