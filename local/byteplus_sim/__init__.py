"""A Seedance (BytePlus ModelArk) simulator that speaks the real task API over HTTP.

It serves `/api/v3/contents/generations/tasks` (create, get, list, delete) as described in
`reference/byteplus-seedance.md`, including what real clients do: nulls for unset fields,
unknown keys, dotted `filter.*` query parameters, `DELETE` answered with `200 {}`. Requests
are validated against the model catalog (`izgens.catalog`) with the provider's error
envelope `{"error": {"code", "message", "param", "type"}}`; the account limits (running
tasks per model, queued-task cap, creates per minute) are those of a real account and can be
changed in `SimConfig`.

Tasks move queued → running → succeeded in a background thread; a succeeded task's
`video_url` points back here at a signed, expiring URL that serves a tiny valid H.264 MP4.
Callbacks are POSTed on every status change and retried for succeeded/failed.

It bills like the provider (§6.1): `usage.completion_tokens` counts the output's real
frames (24 per second plus one) at the output's size and, on 2.x, every reference video's
seconds at that size too, never less than the minimum for video input (read here as: the
input counts at least as long as the output, `VIDEO_INPUT_FLOOR`). Reference videos are
downloaded at create, as the provider does, and their length read from the file (the video
track's samples); one it cannot read, or outside the model's limits, is refused with 400.

Scenario markers in the prompt text provoke every path:

    [sim:fail=CODE]        accepted, then fails with error {code: CODE, message}
    [sim:reject=CODE]      create answers that code (400 for input moderation and parameters;
                           the provider's own status for rate, quota, auth codes)
    [sim:delay=N]          N seconds from create to success (default SimConfig.delay)
    [sim:http=500]         create answers that status with a provider error body; no task
    [sim:http-after=500]   the task IS created, the answer is that status (ambiguous case)
    [sim:timeout]          create answers after SimConfig.timeout_sleep (~30 s); the task is
                           created at that time whether or not the client still waits
    [sim:url=URL]          the task succeeds with `video_url` = URL (host allowlist tests)
    [sim:expire]           the task expires instead of succeeding

Test helpers live under `/sim/` (no auth; a dev tool): `GET /sim/tasks` (every task, deleted
ones too, with the number of create requests seen per callback URL), `GET /sim/callbacks`
(every delivery attempt), `POST /sim/reset`.

Its parts: `models` (SimConfig, SimTask), `engine` (the state and its clock thread),
`validation` (the create body against the catalog), `scenarios` (the markers), `billing`,
`errors` (the envelope), `files` (the signed video and frame), `routes` (the app), `server`.
"""

from __future__ import annotations

from izgens_local.byteplus_sim.billing import completion_tokens
from izgens_local.byteplus_sim.engine import SimEngine
from izgens_local.byteplus_sim.models import SimConfig
from izgens_local.byteplus_sim.routes import create_app
from izgens_local.byteplus_sim.server import SimServer, run

__all__ = [
    "SimConfig",
    "SimEngine",
    "SimServer",
    "completion_tokens",
    "create_app",
    "run",
]
