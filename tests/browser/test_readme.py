"""The README's "first generation in 60 seconds" walkthrough, run as written against a
running `make dev` (only its port and the banner's token differ)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.browser.devstack import ROOT, DevStack

MARKER = "<!-- first-generation: run by tests/browser/test_readme.py -->"


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text()
    after = text[text.index(MARKER) + len(MARKER) :]
    match = re.match(r"\s*```sh\n(.*?)\n```", after, re.S)
    assert match, "the walkthrough's sh block must follow its marker"
    return match.group(1)


def test_first_generation_walkthrough_works_as_written(
    running_stack: DevStack, tmp_path: Path
) -> None:
    banner = re.search(r"^\s*(export TOKEN=\S+)$", running_stack.log(), re.M)
    assert banner, "the banner prints no token"
    script = walkthrough()
    assert "B=http://127.0.0.1:8000\n" in script and "export TOKEN=…" in script
    script = script.replace("B=http://127.0.0.1:8000", f"B={running_stack.base}")
    script = re.sub(r"^export TOKEN=.*$", banner.group(1), script, flags=re.M)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"age_confirmed":true' in done.stdout
    assert '"status":"completed"' in done.stdout
    video = (tmp_path / "first.mp4").read_bytes()
    assert video[4:8] == b"ftyp"
