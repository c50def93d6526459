"""The ``lstmkit`` command line: help, usage errors, ``python -m lstmkit``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lstmkit import __version__
from lstmkit.cli import build_parser, main
from lstmkit.demos.memory import TASKS, MemoryConfig


def test_help_lists_demo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: lstmkit" in out
    assert "demo" in out


def test_demo_help_lists_memory(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--help"]) == 0
    assert "memory" in capsys.readouterr().out


def test_demo_memory_help_shows_options_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "memory", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--task", "--steps", "--iters", "--seed", "--threads"):
        assert flag in out
    assert "(default: adding 100, copy 40)" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lstmkit {__version__}"


def test_unknown_command_fails_with_clear_message(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'frobnicate'" in err
    assert "demo" in err  # names what would be valid


def test_missing_command_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "required" in capsys.readouterr().err


def test_unknown_demo_fails(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "nope"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err
    assert "memory" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps: expected a positive integer, got 0"),
        (["--iters", "ten"], "--iters: expected a positive integer, got 'ten'"),
        (["--task", "sort"], "invalid choice: 'sort'"),
        (["--steps", "3"], "steps must be >= 4, got 3"),
    ],
)
def test_demo_memory_rejects_bad_options(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never"
    assert main(["demo", "memory", "--out", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # nothing written on a usage error


def test_demo_memory_parser_defaults_come_from_memory_config() -> None:
    args = build_parser().parse_args(["demo", "memory"])
    defaults = MemoryConfig()
    assert (args.task, args.iters, args.seed) == (defaults.task, defaults.iters, defaults.seed)
    assert args.steps is None and args.threads is None  # resolved per task by for_task
    assert args.out == Path("demo-memory")
    assert set(TASKS) == {"adding", "copy"}


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lstmkit", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo" in proc.stdout


def test_serve_flags_are_checked_before_loading(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(tmp_path), "--max-wait-ms", "5000"]) == 2
    assert "--max-wait-ms must be in [0, 1000], got 5000.0" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "nope"), "--no-micro-batch"]) == 2
    assert "nope" in capsys.readouterr().err


def test_the_version_is_the_package_metadata_s(capsys: pytest.CaptureFixture[str]) -> None:
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert __version__ == version("lstmkit") == project["version"]
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"lstmkit {project['version']}"
