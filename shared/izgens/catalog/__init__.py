"""The Seedance model catalog and the one place a generation request becomes a plan.

Facts come from `reference/byteplus-seedance.md` §2 (model ids, resolutions, ratios, durations,
pixel sizes, reference roles, input limits). Our own policies sit on top of those facts:

- `duration=-1` ("the model picks the length, billing follows") is never offered: prices are
  fixed up front, before any money moves, so every generation has a known length.
- `generate_audio` defaults to False (the API defaults to True) to keep prices low, and is
  always sent explicitly for the models that support it.
- Legacy text commands in the prompt (`--resolution 1080p`, `--dur 12`, …) are refused: the
  provider may honour them over the body fields, which would let a prompt buy a longer or
  sharper video than the one that was priced. The prompt is the only free text that reaches
  the provider (references go as our own presigned URLs), and it is checked after Unicode
  compatibility normalisation with invisible characters removed (`text_command`).

`plan()` turns a request and its checked references into a `Plan`: the normalized spec, the
content and body fields to send, and the tokens the provider will bill (output frames, and
on 2.x the reference videos' seconds), which SQL turns into credits (`price_credits`).

The files: `models` (what each model takes), `prompts` (the text-command rule), `specs`
(the request and its normalisation), `plans` (the plan and its tokens).
"""

from __future__ import annotations

from izgens.catalog.models import (
    ADAPTIVE,
    DEFAULT_MODEL,
    FPS,
    FRAMES,
    MAX_SEED,
    MODELS,
    RATIOS,
    REFERENCE,
    Mode,
    ModelInfo,
    ReferenceKind,
    ReferenceRule,
    get_model,
    output_size,
)
from izgens.catalog.plans import Plan, Reference, plan
from izgens.catalog.prompts import text_command
from izgens.catalog.specs import MAX_PROMPT_CHARS, MAX_REFERENCES, GenerationSpec, normalize

__all__ = [
    "MAX_SEED",
    "ADAPTIVE",
    "DEFAULT_MODEL",
    "FPS",
    "FRAMES",
    "GenerationSpec",
    "MAX_PROMPT_CHARS",
    "MAX_REFERENCES",
    "MODELS",
    "Mode",
    "ModelInfo",
    "Plan",
    "RATIOS",
    "REFERENCE",
    "Reference",
    "ReferenceKind",
    "ReferenceRule",
    "get_model",
    "normalize",
    "output_size",
    "plan",
    "text_command",
]
