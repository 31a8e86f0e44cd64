"""The margin report (`izgens margin`) and the scheduled check (`cleanup` job `margins`) on
a seeded set of generations moved through the real SQL transitions, one of them
underpriced on purpose."""

from __future__ import annotations

import json
import logging
import math
import uuid
from decimal import Decimal
from typing import Any

import pytest

from izgens.catalog import GenerationSpec, plan
from izgens.cleanup import run_jobs
from izgens.db import Database
from tests.cli.test_cli import run
from tests.support.users import make_user

V20_FAST = "dreamina-seedance-2-0-fast-260128"


def settle(
    db: Database, user: uuid.UUID, spec: GenerationSpec, billed_tokens: int, *, end: str = "done"
) -> dict[str, Any]:
    """A generation admitted, submitted, billed by the provider and ended `end`."""
    planned = plan(spec)
    document = planned.spec.model_dump() | {"recreated_from": None, "input_video_ms": 0}
    row = db.one(
        "select izgens.start_generation(%s, %s, 'h', %s, %s, 0, null, 100, 100, 60) as r",
        (user, uuid.uuid4().hex, json.dumps(document), planned.output_tokens),
    )
    assert row is not None
    gen_id = row["r"]["generation"]["id"]
    db.one("select * from izgens.mark_submitted(%s, %s)", (gen_id, f"cgt-{uuid.uuid4().hex}"))
    db.one("select * from izgens.claim_storing(%s, %s)", (gen_id, billed_tokens))
    if end == "done":
        db.one(
            "select * from izgens.complete_generation(%s, %s, 'e', 10, 'video/mp4')",
            (gen_id, f"videos/{user}/{gen_id}.mp4"),
        )
    else:
        db.one("select * from izgens.fail_generation(%s, 'video_refused', 'x')", (gen_id,))
    final = db.one("select * from public.generations where id = %s", (gen_id,))
    assert final is not None
    return final


@pytest.fixture
def seeded(db: Database) -> dict[str, Any]:
    user = make_user(db, credits=100_000)
    fast = GenerationSpec(prompt="p", model=V20_FAST, resolution="480p", ratio="16:9")
    default = GenerationSpec(prompt="p", duration=4)
    honest = [settle(db, user, fast, plan(fast).output_tokens) for _ in range(3)]
    honest.append(settle(db, user, default, plan(default).output_tokens))
    # billed five times what was priced: what a missed input looks like
    underpriced = settle(db, user, fast, 5 * plan(fast).output_tokens)
    # the copy failed after the provider succeeded: refunded, but billed
    refunded = settle(db, user, default, plan(default).output_tokens, end="failed")
    return {"honest": honest, "underpriced": underpriced, "refunded": refunded}


def test_margin_report_totals_and_flags_exactly_the_underpriced(
    db: Database, seeded: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, report, _ = run(capsys, "margin", "--since", "1h", "--json")
    assert code == 0
    rows = {(r["model"], r["resolution"]): r for r in report["rows"]}
    fast = [g for g in seeded["honest"] if g["model"] == V20_FAST] + [seeded["underpriced"]]
    row = rows[(V20_FAST, "480p")]
    assert row["generations"] == 4
    assert row["credits_charged"] == sum(g["cost"] for g in fast)
    assert row["charged_micro_usd"] == sum(g["cost"] for g in fast) * 10_000  # $0.01 a credit
    assert row["provider_cost_micro_usd"] == sum(g["provider_cost_micro_usd"] for g in fast)
    # 480p 16:9 is 864x496, 121 frames, 5.6 $/Mtok without video input
    tokens = math.ceil(864 * 496 * 121 / 1024)
    assert seeded["honest"][0]["provider_cost_micro_usd"] == math.ceil(tokens * Decimal("5.6"))
    assert row["margin_micro_usd"] == row["charged_micro_usd"] - row["provider_cost_micro_usd"]
    assert row["underpriced"] == 1
    pro_fast = rows[("seedance-1-0-pro-fast-251015", "1080p")]
    assert pro_fast["generations"] == 2 and pro_fast["underpriced"] == 1  # the refunded one
    assert pro_fast["credits_charged"] == seeded["honest"][3]["cost"]
    flagged = {u["id"] for u in report["underpriced"]}
    assert flagged == {str(seeded["underpriced"]["id"]), str(seeded["refunded"]["id"])}

    code, text, _ = run(capsys, "margin", "--since", "1h")
    assert code == 0 and "underpriced generations: 2" in text
    assert str(seeded["underpriced"]["id"]) in text
    code, _, err = run(capsys, "margin", "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_margin_report_since_excludes_older_bills(
    db: Database, seeded: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    db.execute(
        "update public.generations set billed_at = billed_at - interval '2 days' where id = %s",
        (seeded["underpriced"]["id"],),
    )
    _, report, _ = run(capsys, "margin", "--since", "24h", "--json")
    assert {u["id"] for u in report["underpriced"]} == {str(seeded["refunded"]["id"])}
    _, report, _ = run(capsys, "margin", "--since", "3d", "--json")
    assert len(report["underpriced"]) == 2


def test_the_scheduled_check_logs_each_underpriced_generation_once(
    db: Database, seeded: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="izgens.margins"):
        first = run_jobs(["margins"])["margins"]
        second = run_jobs(["margins"])["margins"]
    assert first["checked"] == 6 and first["underpriced"] == 2
    assert second["checked"] == 0 and second["underpriced"] == 0
    lines = [r for r in caplog.records if r.getMessage() == "underpriced generation"]
    logged = {r.fields["generation"] for r in lines}  # type: ignore[attr-defined]
    assert logged == {str(seeded["underpriced"]["id"]), str(seeded["refunded"]["id"])}
    assert all(r.levelno == logging.WARNING for r in lines)
    # an in-flight generation is not settled: not checked until it ends
    user = make_user(db, credits=1_000)
    spec = GenerationSpec(prompt="p", duration=2, resolution="480p")
    planned = plan(spec)
    document = planned.spec.model_dump() | {"recreated_from": None}
    row = db.one(
        "select izgens.start_generation(%s, 'k', 'h', %s, %s, 0, null, 100, 100, 60) as r",
        (user, json.dumps(document), planned.output_tokens),
    )
    assert row is not None
    gen_id = row["r"]["generation"]["id"]
    db.one("select * from izgens.mark_submitted(%s, 'cgt-x')", (gen_id,))
    db.one("select * from izgens.claim_storing(%s, %s)", (gen_id, 10**9))
    later = run_jobs(["margins"])["margins"]
    assert (later["checked"], later["underpriced"]) == (0, 0)
