"""What generations earned against what the provider billed for them.

A generation's price is fixed when it is admitted (`izgens.price_credits`); the provider's
bill arrives with the finished task (`usage.completion_tokens`, recorded with its cost by
`claim_storing`). This module reads both back: the report behind `izgens margin`, and the
scheduled check whose log line per underpriced generation the template turns into an
alarm. A generation charged less than it cost is either an input the price misses or a
price row an operator must raise: docs/operations.md says what to do.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel

from izgens.logs import log_event

if TYPE_CHECKING:
    from izgens.db import Database

__all__ = ["MarginRow", "MarginReport", "Underpriced", "check_margins", "margin_report"]

logger = logging.getLogger("izgens.margins")


class MarginRow(BaseModel):
    """One model and resolution: settled, billed generations since the report's start."""

    model: str
    resolution: str
    generations: int
    credits_charged: int
    charged_micro_usd: int
    provider_cost_micro_usd: int
    underpriced: int

    @property
    def margin_micro_usd(self) -> int:
        return self.charged_micro_usd - self.provider_cost_micro_usd


class Underpriced(BaseModel):
    id: uuid.UUID
    model: str
    resolution: str
    duration: int
    input_video_ms: int
    status: str
    cost: int
    charged_micro_usd: int
    provider_tokens: int
    provider_cost_micro_usd: int


class MarginReport(BaseModel):
    since: datetime
    rows: list[MarginRow]
    underpriced: list[Underpriced]


def margin_report(db: Database, since: datetime, *, limit: int = 1000) -> MarginReport:
    rows = db.all("select * from izgens.margin_report(%s)", (since,))
    worse = db.all("select * from izgens.underpriced_generations(%s, %s)", (since, limit))
    return MarginReport(
        since=since,
        rows=[MarginRow.model_validate(r) for r in rows],
        underpriced=[Underpriced.model_validate(r) for r in worse],
    )


def check_margins(db: Database, limit: int = 1000) -> dict[str, int]:
    """Look at every newly settled generation once; one WARNING line per underpriced one
    (the alarm's metric filter matches `"msg": "underpriced generation"`)."""
    row = db.one("select izgens.check_margins(%s) as r", (limit,))
    result = row["r"] if row else {"checked": 0, "underpriced": []}
    for found in result["underpriced"]:
        gen = Underpriced.model_validate(found)
        log_event(
            logger,
            "underpriced generation",
            logging.WARNING,
            generation=str(gen.id),
            model=gen.model,
            resolution=gen.resolution,
            duration=gen.duration,
            input_video_ms=gen.input_video_ms,
            charged_micro_usd=gen.charged_micro_usd,
            provider_cost_micro_usd=gen.provider_cost_micro_usd,
        )
    return {"checked": int(result["checked"]), "underpriced": len(result["underpriced"])}
