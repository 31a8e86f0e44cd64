"""The `privacy_export` function: data exports and account deletion, as the privacy policy
promises them (docs/privacy.md). It also builds the exports it records, when invoked
asynchronously with a job event (`izgens.export_jobs`)."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Request, Response

from izgens.export_jobs import EVENT_JOB, handle_job
from izgens.http import CurrentUser, blocking, client_ip, create_app, lambda_handler
from izgens.privacy import DeletionView, ExportView, Privacy

app = create_app(
    "privacy_export", title="izgens privacy", description="Data exports and account deletion."
)


async def privacy() -> Privacy:
    return Privacy.from_settings()


PrivacyJobs = Annotated[Privacy, Depends(privacy)]


@app.post("/privacy/exports", status_code=202, response_model=ExportView)
async def request_export(user: CurrentUser, jobs: PrivacyJobs, request: Request) -> ExportView:
    return await blocking(jobs.request_export, user.id, client_ip(request))


@app.get("/privacy/exports/{export_id}", response_model=ExportView)
async def get_export(export_id: uuid.UUID, user: CurrentUser, jobs: PrivacyJobs) -> ExportView:
    return await blocking(jobs.get_export, user.id, export_id)


@app.post("/privacy/deletion", status_code=202, response_model=DeletionView)
async def request_deletion(user: CurrentUser, jobs: PrivacyJobs) -> DeletionView:
    return await blocking(jobs.request_deletion, user.id)


@app.delete("/privacy/deletion", status_code=204)
async def cancel_deletion(user: CurrentUser, jobs: PrivacyJobs) -> Response:
    await blocking(jobs.cancel_deletion, user.id)
    return Response(status_code=204)


_http = lambda_handler(app)


def handler(event: Any, context: Any) -> Any:
    """Function URL requests, and the asynchronous invocations that build exports
    (`izgens.export_jobs`: only a principal allowed to invoke the function sends those)."""
    if isinstance(event, dict) and event.get("job") == EVENT_JOB:
        return handle_job(event)
    return _http(event, context)
