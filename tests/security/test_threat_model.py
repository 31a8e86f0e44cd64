"""docs/security.md names a test for every threat: each one it names must exist, so the
threat model cannot drift from the tests that back it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"


def _references() -> list[tuple[str, str | None]]:
    found = []
    for path, name in re.findall(r"`([a-z_/]+\.py)(?:::([a-z0-9_]+))?`", DOC.read_text()):
        if "/" in path:
            found.append((path, name or None))
    return found


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_test_the_threat_model_names_exists() -> None:
    references = _references()
    assert len(references) > 50
    missing = []
    for path, name in references:
        file = ROOT / "tests" / path
        if not file.exists():
            missing.append(path)
        elif name and name not in _tests_in(file):
            missing.append(f"{path}::{name}")
    assert missing == []
