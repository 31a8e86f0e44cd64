"""Legacy `--flag` text commands in a prompt (reference §2.4), found after the text is folded the way the provider could read it."""

from __future__ import annotations

import re
import unicodedata
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

__all__ = ["text_command"]

# Legacy `--flag value` text commands (§2.4): names and abbreviations, longest first, with
# any separator tolerated inside the multi-word ones (camera_fixed, frames-per-second).
_SEP = r"[\W_]*"

_COMMAND_NAMES = (
    f"frames{_SEP}per{_SEP}second",
    f"camera{_SEP}fixed",
    f"water{_SEP}mark",
    "resolution",
    "duration",
    "frames",
    "ratio",
    "seed",
    "fps",
    "dur",
    "rs",
    "rt",
    "cf",
    "wm",
)

# two or more dashes, up to three non-alphanumerics (spaces, brackets, `=`, `_`), the name,
# and no letter after it: `--dur5`, `x--rs=1080p`, `-- [duration] 9` all count
_TEXT_COMMAND = re.compile(
    rf"-{{2,}}[^0-9a-z]{{0,3}}({'|'.join(_COMMAND_NAMES)})(?![a-z])", re.IGNORECASE
)

# every character Unicode calls a dash, and the minus sign, reads as `-`; the long dashes
# as `--` (a word processor's rendering of a typed double hyphen)
_DASHES = {
    **{ord(c): "-" for c in "\u2010\u2011\u2012\u2013\u2043\u2212\ufe58\ufe63\uff0d\u058a\u1806"},
    **{ord(c): "--" for c in "\u2014\u2015\u2e3a\u2e3b\u2053"},
}

# invisible or combining characters a flag could hide behind; control characters count
# as spaces
_HIDDEN = frozenset({"Cf", "Mn", "Me", "Co", "Cs", "Cn"})


def _visible(text: str) -> str:
    """The text as the provider could read it: compatibility forms folded (fullwidth,
    no-break spaces), invisible and combining characters removed, dashes unified."""
    folded = unicodedata.normalize("NFKC", text).translate(_DASHES)
    kept = []
    for ch in folded:
        category = unicodedata.category(ch)
        if category in _HIDDEN:
            continue
        kept.append(" " if category == "Cc" or category.startswith("Z") else ch)
    return "".join(kept)


def text_command(text: str) -> str | None:
    """The first legacy text command in `text` (as found after normalisation), or None."""
    found = _TEXT_COMMAND.search(_visible(text))
    return found.group(0) if found else None
