"""The generation lifecycle, shared by `generate`, `status`, the provider callback,
`video_stored` and the reconciliation job, so every path moves a generation the same way.

    queued ──submit──▶ submitted ──▶ running ──▶ storing ──copy+event──▶ completed
       │ (provider at capacity: stays queued, dispatched later in arrival order)
       └──────────────── failed / canceled (refunded exactly once, by SQL) ◀──┘

Every transition is one SQL function (infra/supabase/migrations); this package decides
which one to call from what the provider says, and never trusts a callback body: the task
is always re-read from the provider's API.

The files: `models` (the row, the view, the timing rules), `tokens` (callback tokens and
the provider's echo of our ids), `admission` (a request priced, admitted, submitted),
`progress` (what the provider says, applied: running, storing, the copy, the end),
`reconciliation` (stuck generations driven to an end), `lifecycle` (the Lifecycle class:
reads, deletes, the shared transitions).
"""

from __future__ import annotations

from izgens.generations.lifecycle import Lifecycle, provider_client, reset_provider
from izgens.generations.models import GIVE_UP_AFTER_SECONDS, Generation, GenerationView
from izgens.generations.tokens import callback_token, request_hash, verify_callback_token

__all__ = [
    "GIVE_UP_AFTER_SECONDS",
    "request_hash",
    "Generation",
    "GenerationView",
    "Lifecycle",
    "provider_client",
    "reset_provider",
    "callback_token",
    "verify_callback_token",
]
