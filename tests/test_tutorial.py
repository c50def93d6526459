"""docs/tutorial.md: every command it shows runs, in the quick variant written under it
(``<!-- quick: ... -->``; ``<!-- quick-serve: ... -->`` starts a server and asks /health)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser_support import free_port

from lstmkit.cli import main
from lstmkit.data.resolve import ENV_VAR

ROOT = Path(__file__).parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
# quick: the twin of the command above it; quick-serve: of a server command; quick-setup: a step
# the next twin needs (e.g. a quick run to inspect), twin of nothing shown
QUICK = re.compile(r"<!-- (quick|quick-serve|quick-setup): (.*?) -->")


def shown_commands(text: str) -> list[str]:
    """``lstmkit ...`` lines of the ```bash blocks, in order."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        out += [line.strip() for line in block.splitlines() if line.strip().startswith("lstmkit ")]
    return out


def test_every_shown_command_has_a_quick_twin() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    shown = shown_commands(text)
    quick = [cmd for kind, cmd in QUICK.findall(text) if kind != "quick-setup"]
    assert len(shown) == len(quick) >= 8
    for full, fast in zip(shown, quick, strict=True):
        assert shlex.split(full)[:2] == shlex.split(fast)[:2], (full, fast)


def test_every_figure_exists() -> None:
    text = TUTORIAL.read_text(encoding="utf-8")
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert figures
    for fig in figures:
        assert (TUTORIAL.parent / fig).read_bytes()[:4] == b"\x89PNG", fig


@pytest.mark.skipif(
    not all(
        (Path(os.environ.get(ENV_VAR, "/nonexistent")) / f).exists()
        for f in ("imdb.npz", "reuters.npz", "tinyshakespeare.txt")
    ),
    reason=f"{ENV_VAR} does not point at the data sets",
)
def test_tutorial_commands_run_in_quick_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    text = TUTORIAL.read_text(encoding="utf-8")
    for kind, command in QUICK.findall(text):
        port = free_port()
        argv = shlex.split(command.replace("{tmp}", str(tmp_path)).replace("{port}", str(port)))
        assert argv[0] == "lstmkit"
        if kind in ("quick", "quick-setup"):
            assert main(argv[1:]) == 0, command
            continue
        proc = subprocess.Popen(
            [sys.executable, "-m", "lstmkit", *argv[1:]],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                        assert r.status == 200
                        break
                except OSError:
                    assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                    assert time.monotonic() < deadline, "the server did not answer within 60 s"
                    time.sleep(0.3)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    out = capsys.readouterr().out
    assert "greedy generation from 'h': 'hello'" in out
    assert out.count("ROMEO:") >= 1
