"""The generation lifecycle, shared by `generate`, `status`, the provider callback,
`video_stored` and the reconciliation job, so every path moves a generation the same way.

    queued ──submit──▶ submitted ──▶ running ──▶ storing ──copy+event──▶ completed
       │ (provider at capacity: stays queued, dispatched later in arrival order)
       └──────────────── failed / canceled (refunded exactly once, by SQL) ◀──┘

Every transition is one SQL function (infra/supabase/migrations); this module decides
which one to call from what the provider says, and never trusts a callback body: the task
is always re-read from the provider's API.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from izgens import errors
from izgens.logs import log_event
from izgens.paging import DEFAULT_LIMIT, Page, decode_cursor, encode_cursor

if TYPE_CHECKING:
    from izgens import catalog
    from izgens.byteplus import BytePlusClient, Task
    from izgens.config import Settings
    from izgens.db import Database
    from izgens.storage import ReferenceInfo, Storage

__all__ = [
    "Generation",
    "GenerationView",
    "Lifecycle",
    "callback_token",
    "verify_callback_token",
]

logger = logging.getLogger("izgens.generations")

IN_FLIGHT = ("queued", "submitted", "running", "storing")
FINAL = ("completed", "failed", "canceled")
REFRESH_AFTER_SECONDS = 5
# how long the provider may run a task; reference URLs must stay valid as long
TASK_EXPIRES_AFTER = 6 * 3600
MAX_VIDEO_BYTES = 2 * 1024**3
# an ambiguous create (timeout, 5xx, crash) is looked for in the provider's list this long
# before the generation is failed and refunded
UNCERTAIN_SUBMIT_WINDOW_SECONDS = 300
# BytePlus serves a finished task's video for 24 hours: past the task's own expiry and
# that, nothing can deliver the video of a generation still in flight (a copy failing for
# a day, a provider unreadable for a day); it is failed and refunded instead of retried
VIDEO_URL_LIFETIME = 24 * 3600
GIVE_UP_AFTER_SECONDS = TASK_EXPIRES_AFTER + VIDEO_URL_LIFETIME


class Generation(BaseModel):
    """A row of public.generations."""

    id: uuid.UUID
    user_id: uuid.UUID
    status: str
    prompt: str | None  # None once deleted (erased by `forget_generation`)
    model: str
    resolution: str
    ratio: str | None
    duration: int
    seed: int | None = None
    camera_fixed: bool | None = None
    generate_audio: bool | None = None
    reference_keys: list[str] = []
    reference_mode: str | None = None
    cost: int
    input_video_ms: int = 0
    provider_tokens: int | None = None
    provider_task_id: str | None = None
    video_key: str | None = None
    bytes: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    recreated_from: uuid.UUID | None = None
    submit_lease_until: datetime | None = None
    submit_attempted_at: datetime | None = None
    submit_attempts: int = 0
    submitted_at: datetime | None = None
    checked_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    deleted_at: datetime | None = None

    @property
    def spec(self) -> catalog.GenerationSpec:
        from izgens import catalog

        return catalog.GenerationSpec(
            prompt=self.prompt,
            model=self.model,
            resolution=self.resolution,
            ratio=self.ratio,
            duration=self.duration,
            seed=self.seed,
            camera_fixed=self.camera_fixed,
            generate_audio=self.generate_audio,
            reference_keys=list(self.reference_keys),
            mode=self.reference_mode,
        )


class GenerationError(BaseModel):
    code: str
    message: str | None = None


class GenerationView(BaseModel):
    """A generation as the user sees it."""

    id: uuid.UUID
    status: str
    prompt: str
    model: str
    resolution: str
    ratio: str
    duration: int
    seed: int | None
    camera_fixed: bool | None
    generate_audio: bool | None
    reference_keys: list[str]
    reference_mode: str | None = None
    cost: int
    video_url: str | None = None
    error: GenerationError | None = None
    created_at: datetime
    completed_at: datetime | None = None
    recreated_from: uuid.UUID | None = None


# ---------------------------------------------------------------------------------------
# Callback tokens: one per generation, so a leaked URL is good for nothing else


def callback_token(generation_id: uuid.UUID, key: str) -> str:
    mac = hmac.new(key.encode(), f"byteplus-callback:{generation_id}".encode(), hashlib.sha256)
    return f"{generation_id.hex}.{mac.hexdigest()[:40]}"


def verify_callback_token(token: str, key: str) -> uuid.UUID:
    """The generation a callback token names; `Unauthenticated` when forged (constant time)."""
    head, _, _ = token.partition(".")
    try:
        generation_id = uuid.UUID(hex=head)
    except ValueError:
        raise errors.Unauthenticated("invalid callback token") from None
    # compare_digest raises TypeError on non-ASCII str: compare bytes, any text encodes
    given = token.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(callback_token(generation_id, key).encode(), given):
        raise errors.Unauthenticated("invalid callback token")
    return generation_id


def safety_identifier(user_id: uuid.UUID, generation_id: uuid.UUID) -> str:
    """What BytePlus echoes on every task: a hashed end-user id (their abuse tracking) and
    our generation id (how reconciliation finds a task whose create answer was lost)."""
    user_hash = hashlib.sha256(f"izgens-user:{user_id}".encode()).hexdigest()[:24]
    return f"{user_hash}-{generation_id.hex}"


def _generation_of(task: Task) -> uuid.UUID | None:
    ident = task.safety_identifier or ""
    try:
        return uuid.UUID(hex=ident.rsplit("-", 1)[-1]) if "-" in ident else None
    except ValueError:
        return None


def request_hash(body: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# ---------------------------------------------------------------------------------------


class Lifecycle:
    """The transitions, with their collaborators injected (tests pass their own)."""

    def __init__(
        self,
        settings: Settings,
        db: Database,
        storage: Storage | None = None,
        provider: BytePlusClient | None = None,
    ) -> None:
        self.settings = settings
        self.db = db
        self._storage = storage
        self._provider = provider

    @classmethod
    def from_settings(cls) -> Lifecycle:
        """Collaborators from settings; the bucket and the provider client (and their
        imports: boto3, httpx) are only built when a request first needs them."""
        from izgens.config import get_settings
        from izgens.db import get_database

        return cls(get_settings(), get_database())

    @property
    def storage(self) -> Storage:
        if self._storage is None:
            from izgens.storage import get_storage

            self._storage = get_storage()
        return self._storage

    @property
    def provider(self) -> BytePlusClient:
        if self._provider is None:
            self._provider = _shared_provider(self.settings)
        return self._provider

    # -- reads ------------------------------------------------------------------------------

    def get(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> Generation:
        """The caller's generation: `NotFound` for anyone else's, `Unauthenticated` once
        the caller is gone (purged). One round trip."""
        row = self.db.one("select * from izgens.user_generation(%s, %s)", (user_id, generation_id))
        if row is None:
            raise errors.NotFound("no such generation")
        return Generation.model_validate(row)

    def read(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> GenerationView:
        """A status read: the row (one SQL); the provider is asked only about one in flight
        that was not checked in the last REFRESH_AFTER_SECONDS."""
        gen = self.get(user_id, generation_id)
        checked = gen.checked_at or gen.updated_at
        age = (datetime.now(checked.tzinfo) - checked).total_seconds()
        if gen.status in ("submitted", "running") and age > REFRESH_AFTER_SECONDS:
            gen = self.refresh(gen)
        return self.view(gen)

    def history(
        self, user_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT, cursor: str | None = None
    ) -> Page[GenerationView]:
        after = decode_cursor(cursor, (datetime, uuid.UUID))
        rows = self.db.all(
            "select * from izgens.generations_page(%s, %s, %s, %s)",
            (user_id, after[0] if after else None, after[1] if after else None, limit + 1),
        )
        gens = [Generation.model_validate(r) for r in rows[:limit]]
        next_cursor = encode_cursor(gens[-1].created_at, gens[-1].id) if len(rows) > limit else None
        return Page[GenerationView](items=[self.view(g) for g in gens], next_cursor=next_cursor)

    def view(self, gen: Generation) -> GenerationView:
        video_url = None
        if gen.status == "completed" and gen.video_key:
            video_url = self.storage.presigned_get(
                gen.video_key, self.settings.video_link_seconds, filename=f"izgens-{gen.id}.mp4"
            )
        error = (
            GenerationError(code=gen.error_code, message=gen.error_message)
            if gen.error_code
            else None
        )
        return GenerationView(
            id=gen.id,
            status=gen.status,
            prompt=gen.prompt,
            model=gen.model,
            resolution=gen.resolution,
            ratio=gen.ratio,
            duration=gen.duration,
            seed=gen.seed,
            camera_fixed=gen.camera_fixed,
            generate_audio=gen.generate_audio,
            reference_keys=list(gen.reference_keys),
            reference_mode=gen.reference_mode,
            cost=gen.cost,
            video_url=video_url,
            error=error,
            created_at=gen.created_at,
            completed_at=gen.completed_at,
            recreated_from=gen.recreated_from,
        )

    # -- admission --------------------------------------------------------------------------

    def plan(
        self, user_id: uuid.UUID, spec: catalog.GenerationSpec, keys: list[str] | None = None
    ) -> tuple[catalog.Plan, list[ReferenceInfo]]:
        """The request as a priced plan: each reference (the caller's own, or `keys` in its
        place) checked in the bucket, a video's duration read from its index, then the
        catalog's rules. A request with no references never touches the bucket."""
        from izgens import catalog

        keys = list(spec.reference_keys) if keys is None else keys
        try:
            references = [self.storage.check_reference(key, user_id) for key in keys]
        except errors.NotFound:
            # a purged account's uploads are gone too: it is signed out, not missing a file
            self.db.one("select izgens.require_user(%s) as caller", (user_id,))
            raise
        return catalog.plan(spec, references), references

    def quote(self, user_id: uuid.UUID, spec: catalog.GenerationSpec) -> tuple[catalog.Plan, int]:
        """The credits a generation of `spec` costs now: what `start` would debit."""
        plan, _ = self.plan(user_id, spec)
        row = self.db.one(
            "select izgens.require_user(%s) as caller,"
            " izgens.price_credits(%s, %s, %s, %s, %s) as credits",
            (
                user_id,
                plan.spec.model,
                plan.spec.resolution,
                plan.spec.generate_audio,
                plan.output_tokens,
                plan.input_tokens,
            ),
        )
        assert row is not None
        return plan, int(row["credits"])

    def start(
        self,
        user_id: uuid.UUID,
        spec: catalog.GenerationSpec,
        *,
        idempotency_key: str,
        body_hash: str,
        client_ip: str | None,
        recreated_from: uuid.UUID | None = None,
    ) -> Generation:
        """Admit a generation (one SQL call) and, when it holds the lease, submit it."""
        plan, references = self.plan(user_id, spec)
        s = self.settings
        document = plan.spec.model_dump()
        document["recreated_from"] = str(recreated_from) if recreated_from else None
        document["input_video_ms"] = plan.input_video_ms
        row = self.db.one(
            "select izgens.start_generation(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) as r",
            (
                user_id,
                idempotency_key,
                body_hash,
                json.dumps(document),
                plan.output_tokens,
                plan.input_tokens,
                client_ip,
                s.rate_generate_user,
                s.rate_generate_ip,
                s.rate_window_seconds,
            ),
        )
        assert row is not None
        result = row["r"]
        gen = Generation.model_validate(result["generation"])
        if result["created"]:
            log_event(
                logger,
                "generation admitted",
                generation=str(gen.id),
                model=gen.model,
                cost=gen.cost,
            )
        if result["created"] and result["submit"]:
            gen = self.submit(gen, (plan, references))
        return gen

    def recreate(
        self,
        user_id: uuid.UUID,
        generation_id: uuid.UUID,
        *,
        seed: int | None,
        idempotency_key: str,
        body_hash: str,
        client_ip: str | None,
    ) -> Generation:
        """A new generation with the caller's original's parameters (and a new seed)."""
        original = self.get(user_id, generation_id)
        return self.start(
            user_id,
            original.spec.model_copy(update={"seed": seed}),
            idempotency_key=idempotency_key,
            body_hash=body_hash,
            client_ip=client_ip,
            recreated_from=original.id,
        )

    # -- submission ---------------------------------------------------------------------------

    def _callback_url(self, gen: Generation) -> str | None:
        key = self.settings.callback_signing_key
        base = self.settings.public_base_urls.get("status")
        if not key or not base:
            return None
        return f"{base}/callbacks/byteplus?token={callback_token(gen.id, key.get_secret_value())}"

    def submit(
        self,
        gen: Generation,
        checked: tuple[catalog.Plan, list[ReferenceInfo]] | None = None,
    ) -> Generation:
        """Create the provider task for a queued generation this caller holds the lease on.

        A definite refusal fails and refunds at once (and is raised for the caller to show);
        no capacity defers it in arrival order; anything ambiguous is left for reconciliation,
        which looks for the task before ever creating it again.
        """
        try:
            plan, urls = self._send_plan(gen, checked)
            content = plan.content(urls)
        except errors.ProviderUnavailable:
            # the bucket failed, not the references: nothing was sent, so it waits again
            self.db.one("select * from izgens.defer_submission(%s)", (gen.id,))
            raise
        except errors.IzgensError as exc:
            self.fail(gen.id, "reference_unavailable", exc.detail)
            raise
        try:
            task_id = self.provider.create_task(
                model=gen.model,
                content=content,
                callback_url=self._callback_url(gen),
                execution_expires_after=TASK_EXPIRES_AFTER,
                safety_identifier=safety_identifier(gen.user_id, gen.id),
                **plan.task_parameters(),
            )
        except errors.ProviderRejected as exc:
            reason = exc.provider_message or "the video service refused the request"
            self.fail(gen.id, exc.provider_code or exc.code, reason)
            log_event(
                logger,
                "provider refused generation",
                generation=str(gen.id),
                provider_code=exc.provider_code,
            )
            raise errors.ProviderRejected(
                f"{reason} (generation {gen.id} was refunded)",
                provider_code=exc.provider_code,
                provider_message=exc.provider_message,
            ) from exc
        except errors.ProviderRateLimited:
            self.db.one("select * from izgens.defer_submission(%s)", (gen.id,))
            log_event(logger, "provider at capacity; generation queued", generation=str(gen.id))
            return self._reload(gen.id)
        except errors.ProviderUnavailable as exc:
            log_event(
                logger,
                "provider create ambiguous; left for reconciliation",
                logging.WARNING,
                generation=str(gen.id),
                error=exc.code,
            )
            return gen
        try:
            row = self.db.one("select * from izgens.mark_submitted(%s, %s)", (gen.id, task_id))
        except errors.InvalidTransition:
            # failed or canceled meanwhile (reconciliation, user): the task is an orphan
            self._cancel_task(task_id)
            return self._reload(gen.id)
        except errors.DatabaseUnavailable as exc:
            # charged and created: not an error for the caller. The task's callback, or
            # reconciliation (which finds it in the list), marks it submitted
            log_event(
                logger,
                "task created but not recorded; left for reconciliation",
                logging.WARNING,
                generation=str(gen.id),
                task=task_id,
                error=exc.code,
            )
            return gen
        assert row is not None
        return Generation.model_validate(row)

    def _send_plan(
        self, gen: Generation, checked: tuple[catalog.Plan, list[ReferenceInfo]] | None
    ) -> tuple[catalog.Plan, list[str]]:
        """The plan to send and the URLs the provider downloads: the generation's own copies
        of its references, never the uploads themselves.

        An upload's presigned POST stays usable until it expires, so the object under a
        reference key can change after it was priced; a copy under `inputs/` cannot (only
        we write there). A copy whose ETag is not the one checked at admission (or every
        copy of a generation that waited: `checked` is None) is read again, and a copy
        whose videos last longer than was priced is refused (the generation is refunded).
        """
        plan = checked[0] if checked else None
        priced = checked[1] if checked else [None] * len(gen.reference_keys)
        copies, changed = [], False
        for index, (key, reference) in enumerate(zip(gen.reference_keys, priced, strict=True)):
            copy, etag = self.storage.freeze_reference(key, gen.user_id, gen.id, index)
            copies.append(copy)
            changed = changed or reference is None or not etag or etag != reference.etag
        if plan is None or changed:
            plan, _ = self.plan(gen.user_id, gen.spec, copies)
            if plan.input_video_ms > gen.input_video_ms:
                raise errors.InvalidRequest("a reference video changed after it was priced")
        return plan, [self.storage.presigned_get(key, TASK_EXPIRES_AFTER) for key in copies]

    def delete_inputs(self, limit: int = 500) -> dict[str, int]:
        """Delete the reference copies of generations that have ended (no task can fetch
        them any more). Bounded by `limit` generations a run."""
        rows = self.db.all("select * from izgens.inputs_to_delete(%s)", (limit,))
        keys = [
            self.storage.input_key(row["user_id"], row["id"], index, key)
            for row in rows
            for index, key in enumerate(row["reference_keys"])
        ]
        deleted = self.storage.delete_keys(keys)
        if rows:
            self.db.one("select izgens.inputs_deleted(%s) as n", ([row["id"] for row in rows],))
        return {"generations": len(rows), "objects": deleted}

    def dispatch(self, limit: int) -> int:
        """Submit up to `limit` waiting generations, oldest first, one claim at a time.

        Only generations never sent to the provider are claimed (`claim_submissions`), so
        nothing is ever created twice. Stops at the first capacity refusal (the refused one
        goes back to its place in the queue) and at the first ambiguous failure (the
        provider is in trouble; that one is left to reconciliation).
        """
        submitted = 0
        for _attempt in range(limit):  # bounded: each claim takes one waiting generation
            row = self.db.one("select * from izgens.claim_submissions(1)")
            if row is None:
                break
            try:
                after = self.submit(Generation.model_validate(row))
            except errors.ProviderUnavailable:
                break
            except errors.IzgensError:
                continue  # refused: failed and refunded by submit()
            if after.status == "queued":
                break  # no capacity (deferred), or ambiguous (reconciliation's now)
            submitted += 1
        return submitted

    def _dispatch_freed_slot(self) -> None:
        """A task ended, so a provider slot is free: the oldest waiting generation gets it.
        Best effort: the caller's own transition is done and the cleanup job dispatches too,
        so a database failure here must not fail the callback or status read."""
        try:
            self.dispatch(1)
        except errors.DatabaseUnavailable as exc:
            log_event(
                logger, "dispatch after a finished task failed", logging.WARNING, error=exc.code
            )

    # -- provider truth -------------------------------------------------------------------------

    def refresh(self, gen: Generation) -> Generation:
        """Ask the provider about an in-flight generation and apply what it says."""
        if gen.status not in ("submitted", "running") or not gen.provider_task_id:
            return gen
        try:
            task = self.provider.get_task(gen.provider_task_id)
        except errors.ProviderError as exc:
            log_event(
                logger,
                "provider read failed",
                logging.WARNING,
                generation=str(gen.id),
                error=exc.code,
            )
            return gen
        return self.apply(gen, task)

    def apply(self, gen: Generation, task: Task) -> Generation:
        """Move `gen` as far as the provider's task (read from the API) says."""
        if task.status in ("queued",):
            self.db.execute("select izgens.touch_generation(%s)", (gen.id,))
            return gen
        if task.status == "running":
            row = self.db.one("select * from izgens.mark_running(%s)", (gen.id,))
            return Generation.model_validate(row) if row else gen
        if task.status == "succeeded":
            return self.store(gen, task)
        code = task.error.code if task.error else task.status
        message = task.error.message if task.error else f"the provider reports {task.status}"
        if task.status == "cancelled" and gen.status in ("queued", "submitted"):
            row = self.db.one("select * from izgens.cancel_generation(%s, %s)", (gen.id, message))
        else:
            row = self._fail_row(gen.id, code, message)
        self._dispatch_freed_slot()
        return Generation.model_validate(row) if row else self._reload(gen.id)

    def store(self, gen: Generation, task: Task) -> Generation:
        """Exactly one caller copies the finished video into the bucket, then completes."""
        tokens = task.usage.completion_tokens if task.usage else None
        won = self.db.one("select * from izgens.claim_storing(%s, %s)", (gen.id, tokens))
        if won is None:
            return self._reload(gen.id)
        gen = Generation.model_validate(won)
        key = self.storage.video_key(gen.user_id, gen.id)
        if not task.video_url:
            return Generation.model_validate(
                self._fail_row(gen.id, "no_video", "the provider returned no video")
            )
        try:
            info = self.storage.copy_from_url(
                task.video_url,
                key,
                allowed_hosts=self.settings.byteplus_video_hosts,
                max_bytes=MAX_VIDEO_BYTES,
            )
        except errors.ProviderUnavailable as exc:
            # the lease runs out and reconciliation copies again
            log_event(
                logger,
                "video copy failed; will retry",
                logging.WARNING,
                generation=str(gen.id),
                error=exc.code,
            )
            return gen
        except errors.IzgensError as exc:
            log_event(
                logger, "video refused", logging.WARNING, generation=str(gen.id), error=exc.code
            )
            return Generation.model_validate(self._fail_row(gen.id, "video_refused", exc.detail))
        done = self.complete(gen.id, key, info.etag, info.size, info.content_type)
        self._dispatch_freed_slot()
        return done

    def complete(
        self, generation_id: uuid.UUID, key: str, etag: str, size: int, content_type: str
    ) -> Generation:
        row = self.db.one(
            "select * from izgens.complete_generation(%s, %s, %s, %s, %s)",
            (generation_id, key, etag, size, content_type),
        )
        assert row is not None
        gen = Generation.model_validate(row)
        if gen.deleted_at is not None:
            self.storage.delete(key)  # deleted by the user while it was being made
        return gen

    def fail(self, generation_id: uuid.UUID, code: str, message: str) -> bool:
        """Fail and refund; False when the generation had already moved past failing."""
        try:
            self._fail_row(generation_id, code, message)
        except errors.InvalidTransition:
            return False
        return True

    def _fail_row(self, generation_id: uuid.UUID, code: str, message: str) -> dict[str, Any] | None:
        return self.db.one(
            "select * from izgens.fail_generation(%s, %s, %s)", (generation_id, code, message)
        )

    def _reload(self, generation_id: uuid.UUID) -> Generation:
        row = self.db.one("select * from public.generations where id = %s", (generation_id,))
        if row is None:
            raise errors.NotFound("no such generation")
        return Generation.model_validate(row)

    def _cancel_task(self, task_id: str) -> None:
        try:
            self.provider.delete_task(task_id)
        except errors.ProviderError as exc:
            log_event(
                logger,
                "could not cancel orphan task",
                logging.WARNING,
                task=task_id,
                error=exc.code,
            )

    # -- user actions ---------------------------------------------------------------------------

    def delete(self, user_id: uuid.UUID, generation_id: uuid.UUID) -> None:
        """Delete and forget: the prompt and parameters are erased in the same SQL call
        (`forget_generation`), the video and the references no other generation uses go
        now; an unstarted task is canceled and refunded, a running one is left to finish
        and its video deleted when it lands."""
        try:
            row = self.db.one(
                "select izgens.forget_generation(%s, %s) as r", (user_id, generation_id)
            )
        except errors.NotFound:
            # a purged account has no generations left either: it is signed out
            self.db.one("select izgens.require_user(%s) as caller", (user_id,))
            raise
        assert row is not None
        gen = Generation.model_validate(row["r"]["generation"])
        if gen.video_key:
            self.storage.delete(gen.video_key)
        references: list[str] = row["r"]["references"]
        if references:  # a failure here leaves them to the `references` retention job
            self.storage.delete_keys(references)
            self.db.one("select izgens.drop_reference_rows(%s) as n", (references,))
        # the generation's own copies of its references (the keys that named them are
        # erased now, so the `inputs` job would never find them)
        self.storage.delete_prefix(f"inputs/{gen.user_id}/{gen.id}/")
        if gen.status == "queued":
            self._try_cancel(gen)
        elif gen.status == "submitted" and gen.provider_task_id:
            try:
                self.provider.delete_task(gen.provider_task_id)
            except errors.ProviderError:
                return  # already running: it finishes, then the video is discarded
            self._try_cancel(gen)

    def _try_cancel(self, gen: Generation) -> None:
        try:
            self.db.one(
                "select * from izgens.cancel_generation(%s, 'deleted by the user')", (gen.id,)
            )
        except errors.InvalidTransition:
            return

    def callback_generation(self, token: str) -> uuid.UUID:
        """The generation a provider callback's token names; `Unauthenticated` when forged.
        No I/O: checked before the callback's body is even read."""
        key = self.settings.callback_signing_key
        if not key:
            raise errors.Unauthenticated("callbacks are not configured")
        return verify_callback_token(token, key.get_secret_value())

    def handle_callback(self, generation_id: uuid.UUID, task_id: str) -> None:
        """A provider callback (its token already checked): only a hint. Re-read the task
        from the API and apply what it says."""
        gen = self._reload(generation_id)
        if gen.status in FINAL and gen.provider_task_id == task_id:
            return  # a late or repeated callback: nothing left to learn
        task = self.provider.get_task(gen.provider_task_id or task_id)
        if _generation_of(task) != gen.id:
            raise errors.NotFound("the task does not belong to this generation")
        if gen.status == "queued":
            row = self.db.one("select * from izgens.mark_submitted(%s, %s)", (gen.id, task.id))
            gen = Generation.model_validate(row)
        if gen.status in ("submitted", "running"):
            self.apply(gen, task)
        elif gen.status in ("failed", "canceled") and task.id != gen.provider_task_id:
            self._orphan(gen, task)

    def _orphan(self, gen: Generation, task: Task) -> None:
        """A task whose create looked lost, for a generation already failed (and refunded) or
        canceled: cancel it while the provider still allows (queued), else just log it."""
        log_event(
            logger,
            "orphan provider task for an ended generation",
            logging.WARNING,
            generation=str(gen.id),
            task=task.id,
            task_status=task.status,
        )
        if task.status == "queued":
            self._cancel_task(task.id)

    # -- reconciliation -----------------------------------------------------------------------

    def reconcile(self, *, older_than_seconds: int = 60, limit: int = 100) -> dict[str, int]:
        """Drive stuck generations to a final state with the provider's truth. Bounded."""
        counts = {
            "checked": 0,
            "found_orphan": 0,
            "failed_unsubmitted": 0,
            "failed_expired": 0,
            "failed_waiting": 0,
            "errors": 0,
            "dispatched": 0,
        }
        rows = self.db.all(
            "select * from izgens.stuck_generations(%s, %s)", (older_than_seconds, limit)
        )
        for row in rows:
            gen = Generation.model_validate(row)
            counts["checked"] += 1
            try:
                if gen.status == "queued":
                    counts[self._reconcile_unsubmitted(gen)] += 1
                elif self._beyond_recovery(gen):
                    log_event(
                        logger,
                        "in flight past the provider's limits; failing with refund",
                        logging.WARNING,
                        generation=str(gen.id),
                        status=gen.status,
                    )
                    self.fail(gen.id, "video_unavailable", "the video is no longer available")
                    counts["failed_expired"] += 1
                elif gen.status == "storing":
                    if gen.provider_task_id:
                        self.store(gen, self.provider.get_task(gen.provider_task_id))
                else:
                    self.refresh(gen)
            except (errors.InvalidTransition, errors.NotFound) as exc:
                # moved on (or deleted) meanwhile by another path: nothing is wrong
                log_event(logger, "reconcile step raced", generation=str(gen.id), error=exc.code)
            except errors.IzgensError as exc:
                counts["errors"] += 1  # the provider or the bucket failed: alarmed on
                log_event(
                    logger,
                    "reconcile step failed",
                    logging.WARNING,
                    generation=str(gen.id),
                    error=exc.code,
                )
        counts["failed_waiting"] = self.fail_waiting(limit)
        counts["dispatched"] = self.dispatch(limit)
        return counts

    def fail_waiting(self, limit: int) -> int:
        """Generations that waited for provider capacity longer than
        GENERATION_MAX_WAIT_MINUTES (the provider refusing for hours, a used-up quota):
        failed with `capacity_timeout` and refunded exactly once, oldest first, before the
        dispatcher would send them. One SQL call."""
        rows = self.db.all(
            "select id from izgens.fail_waiting_generations(%s, %s)",
            (self.settings.generation_max_wait_minutes * 60, limit),
        )
        for row in rows:
            log_event(
                logger,
                "waited too long for provider capacity; failed with refund",
                logging.WARNING,
                generation=str(row["id"]),
            )
        return len(rows)

    @staticmethod
    def _beyond_recovery(gen: Generation) -> bool:
        """Submitted longer ago than the provider runs a task plus keeps its video."""
        since = gen.submitted_at or gen.created_at
        return (datetime.now(since.tzinfo) - since).total_seconds() > GIVE_UP_AFTER_SECONDS

    def _reconcile_unsubmitted(self, gen: Generation) -> str:
        """A create whose answer was lost (timeout, 5xx, crash): find its task, else fail."""
        task = self._find_task(gen)
        if task is not None:
            self.db.one("select * from izgens.mark_submitted(%s, %s)", (gen.id, task.id))
            self.refresh(self._reload(gen.id))
            return "found_orphan"
        attempted = gen.submit_attempted_at or gen.created_at
        age = (datetime.now(attempted.tzinfo) - attempted).total_seconds()
        if age < UNCERTAIN_SUBMIT_WINDOW_SECONDS:
            return "checked"
        log_event(
            logger,
            "create outcome unknown and no task found; failing with refund",
            logging.WARNING,
            generation=str(gen.id),
        )
        self.fail(gen.id, "submission_failed", "the video service did not accept the request")
        return "failed_unsubmitted"

    def _find_task(self, gen: Generation) -> Task | None:
        for page in range(1, 6):
            listing = self.provider.list_tasks(page_num=page, page_size=100, model=gen.model)
            for task in listing.items:
                if _generation_of(task) == gen.id:
                    return task
            if page * 100 >= listing.total:
                break
        return None


_provider: BytePlusClient | None = None
_provider_lock = threading.Lock()


def _shared_provider(settings: Settings) -> BytePlusClient:
    """One provider client per warm container (its connection pool is reused). Built under
    a lock: concurrent first requests (the container, the dev server) would each build one
    and all but the last would leak their open connections."""
    global _provider
    if _provider is None:
        from izgens.byteplus import BytePlusClient

        if not settings.byteplus_api_key:
            raise errors.ProviderUnavailable("the video service is not configured")
        with _provider_lock:
            if _provider is None:
                _provider = BytePlusClient(
                    settings.byteplus_base_url,
                    settings.byteplus_api_key.get_secret_value(),
                    timeout=settings.byteplus_timeout_seconds,
                )
    return _provider


def reset_provider() -> None:
    global _provider
    with _provider_lock:
        old, _provider = _provider, None
    if old is not None:
        old.close()
