"""The margin of every model at launch prices: what a generation is charged (the real SQL
price on the catalog's plan) against what the Seedance simulator bills for it (its
`usage.completion_tokens` at the provider's unit price), over the catalog's whole grid of
resolutions, ratios, durations, audio and reference mixes.

    python benchmarks/margin.py

A ratio below 1.00 anywhere is an underpriced request (tests/generation/test_pricing.py
fails on it too); the typical ratio is the launch margin (1.5) plus rounding, and requests
that pay the minimum for video input sit above it.
"""

from __future__ import annotations

import statistics
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import migrated_database, table, write_result  # noqa: E402

from izgens.catalog import MODELS, RATIOS, GenerationSpec, plan  # noqa: E402
from izgens_local.byteplus_sim import completion_tokens  # noqa: E402
from tests.generation.test_pricing import reference_mixes  # noqa: E402


def main() -> None:
    results: dict[str, Any] = {}
    with migrated_database() as url, psycopg.connect(url, row_factory=dict_row) as conn:
        value = Decimal(
            conn.execute("select usd_per_credit from public.pricing").fetchone()["usd_per_credit"]
        )  # type: ignore[index]
        for model, info in MODELS.items():
            ratios: list[float] = []
            default = None
            for resolution in info.resolutions:
                for audio in (False, True) if info.supports_audio else (False,):
                    low, high = info.duration_range
                    for duration in range(low, high + 1):
                        for mode, refs in reference_mixes(model):
                            for ratio in [None, *RATIOS] if not refs else [None]:
                                spec = GenerationSpec(
                                    prompt="p",
                                    model=model,
                                    resolution=resolution,
                                    duration=duration,
                                    generate_audio=audio,
                                    mode=mode,
                                    reference_keys=[f"k{i}" for i in range(len(refs))],
                                    **({"ratio": ratio} if ratio else {}),
                                )
                                planned = plan(spec, refs)
                                credits = conn.execute(
                                    "select izgens.price_credits(%s, %s, %s, %s, %s) as c",
                                    (
                                        model,
                                        resolution,
                                        audio,
                                        planned.output_tokens,
                                        planned.input_tokens,
                                    ),
                                ).fetchone()["c"]  # type: ignore[index]
                                price = conn.execute(
                                    "select usd_per_mtok from izgens.provider_price(%s, %s, %s, %s)",
                                    (model, resolution, audio, planned.input_tokens > 0),
                                ).fetchone()["usd_per_mtok"]  # type: ignore[index]
                                shown = planned.spec.ratio
                                tokens = completion_tokens(
                                    info,
                                    resolution,
                                    "16:9" if shown == "adaptive" else str(shown),
                                    duration=duration,
                                    input_video_ms=tuple(
                                        r.video.content_ms for r in refs if r.video
                                    ),
                                )
                                cost = Decimal(tokens) * Decimal(price) / 1_000_000
                                ratios.append(float(credits * value / cost))
                                is_default = (
                                    not refs
                                    and ratio is None
                                    and not audio
                                    and duration == info.default_duration
                                    and resolution == info.default_resolution
                                )
                                if is_default:
                                    default = (credits, float(cost), ratios[-1])
            assert default is not None
            results[model] = {
                "default_credits": default[0],
                "default_provider_usd": default[1],
                "default_margin": default[2],
                "min_margin": min(ratios),
                "median_margin": statistics.median(ratios),
                "max_margin": max(ratios),
                "requests": len(ratios),
            }
    rows = [
        [
            model,
            f"{r['default_credits']} cr / ${r['default_provider_usd']:.4f}",
            f"{r['default_margin']:.2f}x",
            f"{r['min_margin']:.2f}x",
            f"{r['median_margin']:.2f}x",
            f"{r['max_margin']:.2f}x",
            r["requests"],
        ]
        for model, r in results.items()
    ]
    headers = [
        "model",
        "default 5 s: charged / billed",
        "margin",
        "min",
        "median",
        "max",
        "requests",
    ]
    print(table(headers, rows))
    write_result("margin", {"models": results})


if __name__ == "__main__":
    main()
