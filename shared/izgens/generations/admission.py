"""A request becomes a priced plan, is admitted (one SQL call: debit and the queued row) and submitted to the provider; generations that waited for capacity are dispatched oldest first."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING

from izgens import errors
from izgens.logs import log_event

if TYPE_CHECKING:
    from izgens import catalog
    from izgens.storage import ReferenceInfo
from izgens.generations.models import TASK_EXPIRES_AFTER, Generation
from izgens.generations.tokens import callback_token, safety_identifier

logger = logging.getLogger("izgens.generations")


class _Admission:
    """Pricing, admission, submission and dispatch."""

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

    def dispatch(self, limit: int) -> int:
        """Submit up to `limit` waiting generations, oldest first, one claim at a time.

        Only generations never sent to the provider are claimed (`claim_submissions`), so
        nothing is ever created twice, and none while the provider's queue, as far as we
        know, is full (BYTEPLUS_MAX_QUEUED). Stops at the first capacity refusal (the
        refused one goes back to its place in the queue) and at the first ambiguous failure
        (the provider is in trouble; that one is left to reconciliation).
        """
        submitted = 0
        for _attempt in range(limit):  # bounded: each claim takes one waiting generation
            row = self.db.one(
                "select * from izgens.claim_submissions(1, p_provider_queue_cap => %s)",
                (self.settings.byteplus_max_queued,),
            )
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
