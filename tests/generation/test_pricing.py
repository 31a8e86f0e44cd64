"""Money in equals money out: every price covers what the provider bills for it.

The provider's bill is the simulator's (`completion_tokens`, the reference's formula with
the true frame count and, on 2.x, the reference videos' seconds and the minimum for video
input); the price is the real SQL (`izgens.price_credits`) on the catalog's plan. The grid
runs over every model, resolution, ratio and duration the catalog offers, with and without
reference images and videos; the end-to-end tests send real files through the dev server,
the bucket and the simulator, and check that the quote is the debit and the recorded bill
is the simulator's.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from unittest.mock import ANY

import httpx
import pytest

from izgens.catalog import MAX_REFERENCES, MODELS, RATIOS, GenerationSpec, plan
from izgens.db import Database
from izgens.media import VideoInfo
from izgens_local.byteplus_sim import completion_tokens
from tests.generation.conftest import GenEnv, png
from tests.support.mp4 import make_mp4
from tests.support.problems import assert_problem


@dataclass(frozen=True)
class Ref:
    kind: str
    video: VideoInfo | None = None


def video(seconds: float) -> Ref:
    ms = round(seconds * 1000)
    return Ref("video", VideoInfo(ms, ms, 1280, 720, round(seconds * 24)))


def reference_mixes(model: str) -> list[tuple[str | None, list[Ref]]]:
    """(mode, references): none, the first (and last) frame, and in reference mode images,
    videos of several lengths, the most video a request can carry, and a mix."""
    info = MODELS[model]
    mixes: list[tuple[str | None, list[Ref]]] = [(None, [])]
    mixes.append(("frames", [Ref("image")] * info.max_frames))
    image = info.references.get("image")
    if image:
        mixes.append(("reference", [Ref("image")] * min(image.max_count, MAX_REFERENCES)))
    rule = info.references.get("video")
    if rule:
        shortest, longest = info.video_seconds
        for seconds in (shortest, 3.3, 7.5, longest):
            mixes.append(("reference", [video(seconds)]))
        most = min(rule.max_count, MAX_REFERENCES)
        each = info.video_total_seconds / most
        mixes.append(("reference", [video(each)] * most))
        mixes.append(("reference", [Ref("image"), video(shortest), video(2.5)]))
    return mixes


def credit_value(db: Database) -> Decimal:
    row = db.one("select usd_per_credit from public.pricing")
    assert row is not None
    return Decimal(row["usd_per_credit"])


def unit_price(
    db: Database, model: str, resolution: str, audio: bool, video_input: bool
) -> Decimal:
    row = db.one(
        "select usd_per_mtok from izgens.provider_price(%s, %s, %s, %s)",
        (model, resolution, audio, video_input),
    )
    assert row is not None and row["usd_per_mtok"] is not None
    return Decimal(row["usd_per_mtok"])


def quote(db: Database, planned: Any) -> int:
    row = db.one(
        "select izgens.price_credits(%s, %s, %s, %s, %s) as c",
        (
            planned.spec.model,
            planned.spec.resolution,
            planned.spec.generate_audio,
            planned.output_tokens,
            planned.input_tokens,
        ),
    )
    assert row is not None
    return int(row["c"])


def bill(planned: Any, refs: list[Ref]) -> int:
    """What the simulator bills for this request: the ratio it reports for `adaptive`."""
    ratio = planned.spec.ratio if planned.spec.ratio != "adaptive" else "16:9"
    return completion_tokens(
        planned.info,
        planned.spec.resolution,
        ratio,
        duration=planned.spec.duration,
        input_video_ms=tuple(r.video.content_ms for r in refs if r.video),
    )


def test_every_price_covers_the_providers_bill(db: Database) -> None:
    value = credit_value(db)
    checked = 0
    worst: tuple[float, str] = (math.inf, "")
    for model, info in MODELS.items():
        for resolution in info.resolutions:
            low, high = info.duration_range
            audios = (False, True) if info.supports_audio else (False,)
            for audio in audios:
                for duration in range(low, high + 1):
                    for mode, refs in reference_mixes(model):
                        media_led = bool(refs) and (mode == "frames" or any(r.video for r in refs))
                        fixed = not (info.adaptive_only_with_video and media_led)
                        ratios: list[str | None] = [None]
                        if duration == info.default_duration and fixed:
                            ratios += list(RATIOS)
                        for ratio in ratios:
                            fields: dict[str, Any] = {"model": model, "resolution": resolution}
                            fields |= {"duration": duration, "generate_audio": audio, "mode": mode}
                            if ratio is not None:
                                fields["ratio"] = ratio
                            keys = [f"references/x/{i}" for i in range(len(refs))]
                            spec = GenerationSpec(prompt="p", reference_keys=keys, **fields)
                            planned = plan(spec, refs)
                            with_video = planned.input_tokens > 0
                            charged = quote(db, planned) * value
                            tokens = bill(planned, refs)
                            cost = (
                                Decimal(tokens)
                                * unit_price(db, model, resolution, audio, with_video)
                                / 1_000_000
                            )
                            where = f"{model} {resolution} {ratio} {duration}s audio={audio} {refs}"
                            assert charged >= cost, f"underpriced: {where}: {charged} < {cost}"
                            worst = min(worst, (float(charged / cost), where))
                            checked += 1
    assert checked > 2000  # the grid really ran
    assert worst[0] >= 1.0, worst


def test_reference_videos_cost_what_their_seconds_cost(db: Database) -> None:
    """The bug this was built for: three reference videos used to cost nothing more."""
    model = "dreamina-seedance-2-0-fast-260128"
    bare = plan(GenerationSpec(prompt="p", model=model))
    keys = [f"references/x/{i}" for i in range(3)]
    three = plan(GenerationSpec(prompt="p", model=model, reference_keys=keys), [video(5)] * 3)
    assert three.input_video_ms == 15_000
    assert quote(db, three) > 2 * quote(db, bare)
    # 1112x834 (adaptive's largest 720p size) is 906 tokens a frame; 15 s of input is
    # 3 x (120 + 1) frames; the with-video-input price is 3.3 $/Mtok, the margin 1.5
    tokens = math.ceil(1112 * 834 * (121 + 3 * 121) / 1024)
    assert quote(db, three) == math.ceil(
        tokens * Decimal("3.3") / 1_000_000 * Decimal("1.5") / Decimal("0.01")
    )


def test_a_short_reference_video_pays_the_minimum_for_video_input(db: Database) -> None:
    model = "dreamina-seedance-2-0-260128"
    spec = GenerationSpec(prompt="p", model=model, duration=10, reference_keys=["k"])
    short = plan(spec, [video(2)])
    floor = db.one(
        "select output_multiple from public.video_input_floors where model = %s", (model,)
    )
    assert floor is not None
    billable = db.one(
        "select izgens.billable_tokens(%s, %s, %s) as t",
        (model, short.output_tokens, short.input_tokens),
    )
    assert billable is not None
    assert billable["t"] == math.ceil(short.output_tokens * Decimal(floor["output_multiple"]))
    assert billable["t"] > short.output_tokens + short.input_tokens
    # operators can change the row; the price follows at once
    before = quote(db, short)
    db.execute(
        "update public.video_input_floors set output_multiple = 3 where model = %s", (model,)
    )
    assert quote(db, short) > before


def test_a_new_price_version_applies_to_new_quotes_and_keeps_the_old_one(db: Database) -> None:
    planned = plan(GenerationSpec(prompt="p"))  # 1.0 pro fast, 1080p, 5 s
    margin = Decimal("1.5") / credit_value(db)
    assert quote(db, planned) == math.ceil(planned.output_tokens * Decimal("1.0") / 10**6 * margin)
    db.execute(
        "insert into public.provider_prices"
        " (model, resolution, generate_audio, video_input, usd_per_mtok, effective_from)"
        " values (%s, %s, false, false, 2.0, now() - interval '1 second'),"
        "        (%s, %s, false, false, 9.0, now() + interval '1 day')",
        (planned.spec.model, planned.spec.resolution) * 2,
    )
    assert quote(db, planned) == math.ceil(planned.output_tokens * Decimal("2.0") / 10**6 * margin)
    versions = db.all(
        "select usd_per_mtok from public.provider_prices where model = %s and resolution = %s"
        " and not video_input order by effective_from",
        (planned.spec.model, planned.spec.resolution),
    )
    assert [Decimal(v["usd_per_mtok"]) for v in versions] == [1, 2, 9]


# --- end to end -------------------------------------------------------------------------------


def upload(env: GenEnv, headers: dict[str, str], data: bytes, content_type: str) -> str:
    created = env.api.post(
        "/generate/uploads",
        json={"filename": "ref", "content_type": content_type, "bytes": len(data)},
        headers=headers,
    )
    assert created.status_code == 201, created.text
    form = created.json()
    posted = httpx.post(
        form["url"], data=form["fields"], files={"file": ("ref", data, content_type)}, timeout=10
    )
    assert posted.status_code in (200, 204), posted.text
    return str(form["key"])


E2E = [
    ("seedance-1-0-pro-fast-251015", [], {"resolution": "720p", "duration": 4}),
    ("seedance-1-0-pro-250528", ["image"], {"resolution": "480p", "duration": 6}),
    ("seedance-1-5-pro-251215", [], {"generate_audio": True, "duration": 5}),
    ("dreamina-seedance-2-0-fast-260128", [3.0, 4.5, 7.0], {"duration": 5}),
    ("dreamina-seedance-2-0-mini-260615", ["image", 2.0], {"duration": 12}),
    ("dreamina-seedance-2-0-260128", [6.0], {"resolution": "1080p", "duration": 4}),
    ("dreamina-seedance-2-5-260628", [12.0, 18.0], {"duration": 8}),
]


@pytest.mark.parametrize(("model", "references", "fields"), E2E, ids=[m for m, _, _ in E2E])
def test_the_quote_is_the_debit_and_the_bill_is_recorded(
    env: GenEnv, model: str, references: list[Any], fields: dict[str, Any]
) -> None:
    user = env.user(credits=100_000)
    keys = [
        upload(env, user.headers, png(), "image/png")
        if ref == "image"
        else upload(env, user.headers, make_mp4(ref, audio=False), "video/mp4")
        for ref in references
    ]
    body = {"prompt": "a lighthouse at dusk", "model": model, "reference_keys": keys, **fields}
    quoted = env.api.post("/generate/quote", json=body, headers=user.headers)
    assert quoted.status_code == 200, quoted.text
    seconds = sum(r for r in references if r != "image")
    assert quoted.json()["reference_video_seconds"] == pytest.approx(seconds)
    gen = env.accepted(user, **body)
    assert gen["cost"] == quoted.json()["credits"]
    assert env.balance(user) == 100_000 - gen["cost"]
    done = env.wait_status(gen["id"], "completed")
    task = env.sim_task(gen["id"])
    assert done["provider_tokens"] == task["usage"]["completion_tokens"]
    assert done["input_video_ms"] == round(seconds * 1000)
    price = unit_price(
        env.db, model, done["resolution"], bool(done["generate_audio"]), bool(seconds)
    )
    assert done["provider_cost_micro_usd"] == math.ceil(done["provider_tokens"] * price)
    charged = gen["cost"] * credit_value(env.db) * 1_000_000
    assert charged >= done["provider_cost_micro_usd"]
    # the user's price stays what was quoted; the ledger holds the one debit
    assert env.ledger(gen["id"]) == [("generation", -gen["cost"])]
    assert env.row(gen["id"])["cost"] == gen["cost"]


def test_a_reference_replaced_after_admission_cannot_buy_more(env: GenEnv) -> None:
    """The upload's presigned POST is still valid after the generation is priced. What the
    provider downloads is the generation's own copy: a longer file put under the upload's
    key afterwards never reaches it, however late the provider reads the URL."""
    user = env.user(credits=100_000)
    key = upload(env, user.headers, make_mp4(2.5, audio=False), "video/mp4")
    gen = env.accepted(user, model="dreamina-seedance-2-0-fast-260128", reference_keys=[key])
    env.storage.client.put_object(
        Bucket=env.storage.bucket, Key=key, Body=make_mp4(15), ContentType="video/mp4"
    )
    (sent,) = env.sim_task(gen["id"])["sim"]["video_urls"]
    copy = f"inputs/{user.id}/{gen['id']}/0.mp4"
    assert f"/{copy}?" in sent
    later = httpx.get(sent, timeout=10)  # the provider fetching after the swap
    assert later.status_code == 200 and later.content == make_mp4(2.5, audio=False)
    done = env.wait_status(gen["id"], "completed")
    assert done["input_video_ms"] == 2500
    assert gen["cost"] * credit_value(env.db) * 1_000_000 >= done["provider_cost_micro_usd"]
    # once the generation is over, its copy goes; the upload itself stays (retention)
    from izgens.cleanup import run_jobs

    assert run_jobs(["inputs"])["inputs"] == {"generations": 1, "objects": 1, "ms": ANY}
    assert not env.object_exists(copy) and env.object_exists(key)
    assert env.row(gen["id"])["inputs_deleted_at"] is not None
    assert run_jobs(["inputs"])["inputs"]["generations"] == 0


def test_a_waiting_generation_whose_reference_grew_is_refunded_not_sent(env: GenEnv) -> None:
    user = env.user(credits=100_000)
    key = upload(env, user.headers, make_mp4(3), "video/mp4")
    env.sim.config.rpm = 0  # the provider is at capacity: the generation waits with us
    gen = env.accepted(user, model="dreamina-seedance-2-0-fast-260128", reference_keys=[key])
    assert gen["status"] == "queued"
    env.storage.client.put_object(
        Bucket=env.storage.bucket, Key=key, Body=make_mp4(14), ContentType="video/mp4"
    )
    env.sim.config.rpm = 600
    env.reconcile()
    failed = env.row(gen["id"])
    assert failed["status"] == "failed" and failed["error_code"] == "reference_unavailable"
    assert env.balance(user) == 100_000 and env.sim_tasks(gen["id"]) == []


BAD_VIDEOS = [
    ("not an MP4 at all", b"<html>" + bytes(300), 422),
    ("a PNG dressed as a video", png(), 422),
    ("truncated inside its index", make_mp4(5)[:200], 422),
    ("the index at the end, cut off", make_mp4(5, faststart=False, mdat_bytes=4096)[:-40], 422),
    ("an index but no video track", None, 422),
    ("longer than the model takes", make_mp4(15.5), 422),
    ("shorter than the model takes", make_mp4(1.5), 422),
    ("headers claiming 5 s over 16 s of frames", make_mp4(16, declared_seconds=5), 422),
    ("smaller than 480p", make_mp4(5, width=320, height=240), 422),
]


def _audio_only() -> bytes:
    data = make_mp4(5)
    return data.replace(b"vide", b"soun")


@pytest.mark.parametrize(("why", "data", "status"), BAD_VIDEOS, ids=[b[0] for b in BAD_VIDEOS])
def test_a_bad_reference_video_is_refused_before_any_money_moves(
    env: GenEnv, why: str, data: bytes | None, status: int
) -> None:
    user = env.user(credits=10_000)
    key = f"references/{user.id}/{uuid.uuid4().hex}.mp4"
    env.storage.client.put_object(
        Bucket=env.storage.bucket,
        Key=key,
        Body=data if data is not None else _audio_only(),
        ContentType="video/mp4",
    )
    before = env.counts()
    body = {"model": "dreamina-seedance-2-0-260128", "reference_keys": [key]}
    quoted = env.api.post("/generate/quote", json=body, headers=user.headers)
    assert quoted.status_code == status, (why, quoted.text)
    response = env.generate(user, **body)
    assert response.status_code == status, (why, response.text)
    assert_problem(response, status, "invalid_request")
    assert env.counts() == before and env.balance(user) == 10_000 and env.sim_tasks() == []


def test_videos_longer_than_the_models_total_are_refused(env: GenEnv) -> None:
    user = env.user(credits=10_000)
    keys = [upload(env, user.headers, make_mp4(6), "video/mp4") for _ in range(3)]
    before = env.counts()
    response = env.generate(user, model="dreamina-seedance-2-0-260128", reference_keys=keys)
    assert response.status_code == 422 and "15 seconds together" in response.json()["detail"]
    assert env.counts() == before and env.balance(user) == 10_000


FLAGS = [
    "a boat --duration 12",
    "a boat--dur 12",
    "a boat (--rs 1080p)",
    "a boat [--resolution=1080p]",
    "a boat,--fps=30",
    "a boat --dur12",
    "a boat -- duration 12",
    "a boat --\u200bduration 12",  # zero-width space
    "a boat -\u2060-dur 12",  # word joiner between the dashes
    "a boat \uff0d\uff0dduration 12",  # fullwidth hyphen-minus
    "a boat \uff0d\uff0d\uff44\uff55\uff52 12",  # fullwidth letters too
    "a boat\u00a0--rs\u00a0720p",  # no-break spaces
    "a boat \u2014duration 12",  # an em dash: a typed "--" after autocorrect
    "a boat \u2212\u2212seed 4",  # minus signs
    "a boat --Camera_Fixed true",
    "a boat --frames-per-second 60",
    "a boat --WM true",
    "a boat --d\u0301ur 12",  # a combining mark inside the name
    "a boat\n--ratio 21:9",
]


@pytest.mark.parametrize("prompt", FLAGS)
def test_prompt_flags_in_any_spelling_are_refused_before_any_money_moves(
    env: GenEnv, prompt: str
) -> None:
    user = env.user(credits=10_000)
    before = env.counts()
    response = env.generate(user, prompt)
    assert response.status_code == 422, response.text
    assert "parameter flags" in response.json()["detail"]
    assert env.counts() == before and env.balance(user) == 10_000 and env.sim_tasks() == []
    quoted = env.api.post("/generate/quote", json={"prompt": prompt}, headers=user.headers)
    assert quoted.status_code == 422


@pytest.mark.parametrize(
    "prompt",
    [
        "a well-lit room -- quiet, 24fps look",
        "a durable boat --- slow pan",
        "the rsvp card on a table",
        "cf. the old harbour, 1080p look",
        "a seedling grows -- timelapse",
    ],
)
def test_prose_with_dashes_is_fine(env: GenEnv, prompt: str) -> None:
    user = env.user(credits=10_000)
    assert env.generate(user, prompt).status_code == 202


def test_the_models_route_lists_the_catalog(env: GenEnv) -> None:
    models = env.api.get("/generate/models")
    assert models.status_code == 200
    by_id = {m["id"]: m for m in models.json()}
    assert set(by_id) == set(MODELS)
    assert by_id["dreamina-seedance-2-5-260628"]["video_references"]["seconds_total"] == 30
    assert by_id["seedance-1-0-pro-fast-251015"]["video_references"] is None


def test_pricing_references_costs_no_extra_sql(env: GenEnv) -> None:
    """A generation with reference videos is still 2 SQL round trips, its quote 1."""
    from izgens.db import get_database
    from tests.generation.conftest import SqlCounter

    user = env.user(credits=100_000)
    keys = [upload(env, user.headers, make_mp4(s, audio=False), "video/mp4") for s in (3, 4)]
    body = {"model": "dreamina-seedance-2-0-fast-260128", "reference_keys": keys}
    with SqlCounter(get_database()) as counter:
        quoted_id, created_id = f"rt-{uuid.uuid4().hex}", f"rt-{uuid.uuid4().hex}"
        quoted = env.api.post(
            "/generate/quote", json=body, headers={**user.headers, "X-Request-Id": quoted_id}
        )
        created = env.api.post(
            "/generate/generations",
            json={"prompt": "counted [sim:delay=30]", **body},
            headers={**user.headers, "Idempotency-Key": "k", "X-Request-Id": created_id},
        )
    assert quoted.status_code == 200 and counter.of(quoted_id) == 1
    assert created.status_code == 202 and counter.of(created_id) == 2, counter.by_request
    assert created.json()["cost"] == quoted.json()["credits"]


def test_deleting_a_generation_deletes_its_reference_copies_at_once(env: GenEnv) -> None:
    user = env.user(credits=100_000)
    keys = [
        upload(env, user.headers, make_mp4(3, audio=False), "video/mp4"),
        upload(env, user.headers, png(), "image/png"),
    ]
    gen = env.accepted(user, model="dreamina-seedance-2-0-fast-260128", reference_keys=keys)
    env.wait_status(gen["id"], "completed")
    copies = [f"inputs/{user.id}/{gen['id']}/0.mp4", f"inputs/{user.id}/{gen['id']}/1.png"]
    assert all(env.object_exists(c) for c in copies)
    assert (
        env.api.delete(f"/status/generations/{gen['id']}", headers=user.headers).status_code == 204
    )
    assert not any(env.object_exists(c) for c in copies)
