"""The `generate` function: quotes, reference uploads, generations and Recreate.

Thin by design: parse, authorize, call `izgens.generations`, shape the response.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from izgens import catalog
from izgens.generations import GenerationView, Lifecycle, request_hash
from izgens.http import (
    CurrentUser,
    blocking,
    client_ip,
    create_app,
    lambda_handler,
    problem_responses,
)

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
    reference_video_seconds: float


class QuoteRequest(catalog.GenerationSpec):
    """The body of a generation; the prompt is optional (checked when given)."""

    prompt: Annotated[  # type: ignore[assignment]
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=catalog.MAX_PROMPT_CHARS),
    ] = "quote"


class ReferenceLimits(BaseModel):
    role: str
    max_count: int


class VideoLimits(ReferenceLimits):
    seconds_each: tuple[int, int]
    seconds_total: int


class ModelView(BaseModel):
    """What a model offers, for a frontend's form (the same catalog the prices use)."""

    id: str
    name: str
    resolutions: list[str]
    default_resolution: str
    ratios: list[str]
    durations: tuple[int, int]
    default_duration: int
    audio: bool
    seed: bool
    camera_fixed: bool
    modes: list[catalog.Mode]
    default_mode: catalog.Mode
    frames: int  # images in mode `frames`: 1 (the first frame) or 2 (first and last)
    image_references: ReferenceLimits | None  # mode `reference`
    video_references: VideoLimits | None  # mode `reference`


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


async def lifecycle() -> Lifecycle:
    return Lifecycle.from_settings()


Life = Annotated[Lifecycle, Depends(lifecycle)]


def _quote(plan: catalog.Plan, credits: int) -> Quote:
    spec = plan.spec
    return Quote(
        credits=credits,
        model=plan.info.id,
        resolution=spec.resolution or "",
        ratio=spec.ratio or "",
        duration=spec.duration or 0,
        generate_audio=bool(spec.generate_audio),
        reference_video_seconds=plan.input_video_ms / 1000,
    )


@app.get("/quote", response_model=Quote)
async def get_quote(
    user: CurrentUser,
    life: Life,
    model: Annotated[str | None, Query(max_length=100)] = None,
    resolution: Annotated[str | None, Query(max_length=20)] = None,
    ratio: Annotated[str | None, Query(max_length=20)] = None,
    duration: Annotated[int | None, Query(ge=-1, le=120)] = None,
    generate_audio: bool | None = None,
) -> Quote:
    """A generation without references; `POST /quote` prices any generation body."""
    spec = catalog.GenerationSpec(
        prompt="quote",
        model=model,
        resolution=resolution,
        ratio=ratio,
        duration=duration,
        generate_audio=generate_audio,
    )
    return _quote(*await blocking(life.quote, user.id, spec))


@app.post("/quote", response_model=Quote)
async def post_quote(body: QuoteRequest, user: CurrentUser, life: Life) -> Quote:
    """Exactly what `POST /generations` with this body would debit now, references included."""
    spec = catalog.GenerationSpec.model_validate(body.model_dump())
    return _quote(*await blocking(life.quote, user.id, spec))


@app.get("/models", response_model=list[ModelView])
async def get_models() -> list[ModelView]:
    """The catalog: public, so a signed-out page can show what is on offer."""
    views = []
    for info in catalog.MODELS.values():
        image, video = info.references.get("image"), info.references.get("video")
        views.append(
            ModelView(
                id=info.id,
                name=info.name,
                resolutions=list(info.resolutions),
                default_resolution=info.default_resolution,
                ratios=list(info.ratios),
                durations=info.duration_range,
                default_duration=info.default_duration,
                audio=info.supports_audio,
                seed=info.supports_seed,
                camera_fixed=info.supports_camera_fixed,
                modes=list(info.modes),
                default_mode=info.default_mode,
                frames=info.max_frames,
                image_references=ReferenceLimits(role=image.role, max_count=image.max_count)
                if image
                else None,
                video_references=VideoLimits(
                    role=video.role,
                    max_count=video.max_count,
                    seconds_each=info.video_seconds,
                    seconds_total=info.video_total_seconds,
                )
                if video
                else None,
            )
        )
    return views


@app.post("/uploads", status_code=201, response_model=Upload, responses=problem_responses(403))
async def create_upload(body: UploadRequest, user: CurrentUser, request: Request) -> Upload:
    from izgens import uploads

    presigned = await blocking(
        uploads.create_upload, user.id, body.content_type, body.bytes, client_ip=client_ip(request)
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
async def create_generation(
    body: catalog.GenerationSpec,
    user: CurrentUser,
    life: Life,
    request: Request,
    key: IdempotencyKey,
) -> GenerationView:

    def admit() -> GenerationView:
        return life.view(
            life.start(
                user.id,
                body,
                idempotency_key=key,
                body_hash=request_hash(body.model_dump(exclude_unset=True)),
                client_ip=client_ip(request),
            )
        )

    return await blocking(admit)


@app.post(
    "/generations/{generation_id}/recreate",
    status_code=202,
    response_model=GenerationView,
    responses=problem_responses(402, 403, 409),
)
async def recreate(
    generation_id: uuid.UUID,
    body: RecreateRequest,
    user: CurrentUser,
    life: Life,
    request: Request,
    key: IdempotencyKey,
) -> GenerationView:
    document = {"recreate": str(generation_id), **body.model_dump(exclude_unset=True)}

    def admit() -> GenerationView:
        return life.view(
            life.recreate(
                user.id,
                generation_id,
                seed=body.seed,
                idempotency_key=key,
                body_hash=request_hash(document),
                client_ip=client_ip(request),
            )
        )

    return await blocking(admit)


handler = lambda_handler(app)
