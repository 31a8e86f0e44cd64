"""Every `izgens` command the docs show is one the CLI accepts (STYLE: docs show only
commands that exist); the README's walkthrough itself runs in tests/browser/test_readme.py."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from izgens.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", ROOT / "docs" / "operations.md"]


PREFIXES = ("izgens ", ".venv/bin/izgens ")


def shown_commands() -> list[tuple[str, str]]:
    """Commands in `sh` blocks, and inline ones written out in full (no `<…>`, `[…]`, `|`)."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                command = line.split(" # ")[0].strip()
                if command.startswith(PREFIXES):
                    found.append((doc.name, command))
        for span in re.findall(r"(?<!`)`([^`\n]+)`(?!`)", text):
            if span.startswith(PREFIXES) and not set(span) & set("<>[]|…"):
                found.append((doc.name, span))
    return found


def test_the_docs_show_commands() -> None:
    names = {doc for doc, _ in shown_commands()}
    assert names == {"README.md", "operations.md"}


@pytest.mark.parametrize("doc, command", shown_commands(), ids=lambda v: v)
def test_every_documented_command_parses(doc: str, command: str) -> None:
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as exc:  # --help exits 0
        if exc.code in (0, None):
            return
        pytest.fail(f"{doc}: `{command}` is not a valid izgens command (exit {exc.code})")
