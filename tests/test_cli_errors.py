"""Every CLI error is one line: each command against bad arguments, missing and corrupt files
exits 2 with one ``lstmkit COMMAND: error: ...`` line on stderr (argparse's own errors: the usage
lines then ``lstmkit ...: error: ...``), and never a traceback. No server is started: serve and
studio get only arguments or files that are refused before anything listens."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main

GARBAGE = bytes(range(256)) * 8 + b"\x00\xff\xfe" * 50  # binary, not UTF-8, with NULs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A finished tiny text run, copies of it with a corrupt config.json / model.safetensors, a
    recipe that is not TOML, a binary recipe, a binary CSV, an empty directory."""
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "poor"]
    csv = root / "texts.csv"
    rows = [f"{' '.join(rng.choice(words, size=5))},{i % 2}" for i in range(60)]
    csv.write_text("text,label\n" + "\n".join(rows) + "\n")
    run = root / "run"
    args = [
        "train", "--task", "text", "--train", str(csv), "--text-column", "text",
        "--label-column", "label", "--baseline", "none", "--out", str(run), "--no-progress",
        "--set", "pretrain.method=none", "--set", "train.max_steps=2",
        "--set", "model.hidden_size=4", "--set", "model.embedding_dim=4",
    ]  # fmt: skip
    assert main(args) == 0
    out = {"run": run, "csv": csv}
    out["bad_config"] = root / "bad-config"
    shutil.copytree(run, out["bad_config"])
    (out["bad_config"] / "config.json").write_text('{"recipe": {"task": "text", ')
    out["bad_weights"] = root / "bad-weights"
    shutil.copytree(run, out["bad_weights"])
    weights = out["bad_weights"] / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    out["garbage_weights"] = root / "garbage-weights"
    shutil.copytree(run, out["garbage_weights"])
    (out["garbage_weights"] / "model.safetensors").write_bytes(GARBAGE)
    out["not_toml"] = root / "not-toml.toml"
    out["not_toml"].write_text("[train\nlr = = 3\n")
    out["binary_toml"] = root / "binary.toml"
    out["binary_toml"].write_bytes(GARBAGE)
    out["binary_csv"] = root / "binary.csv"
    out["binary_csv"].write_bytes(GARBAGE)
    out["empty_csv"] = root / "empty.csv"
    out["empty_csv"].write_text("")
    out["empty_dir"] = root / "empty"
    out["empty_dir"].mkdir()
    out["missing"] = root / "missing"
    out["results"] = root / "results"
    out["results"].mkdir()
    (out["results"] / "bad.json").write_bytes(GARBAGE)
    out["readme"] = root / "README.md"
    out["readme"].write_text(
        "# x\n<!-- BEGIN GENERATED: results -->\n<!-- END GENERATED: results -->\n"
    )
    out["root"] = root
    return out


Case = Callable[[dict[str, Path]], list[str]]

USAGE: dict[str, Case] = {  # argparse refuses these: usage lines, then one error line
    "no command": lambda f: [],
    "unknown command": lambda f: ["fly"],
    "train unknown option": lambda f: ["train", "--bogus"],
    "train bad --seeds": lambda f: ["train", "x.toml", "--seeds", "zero"],
    "train bad --task": lambda f: ["train", "--task", "poetry"],
    "evaluate no run": lambda f: ["evaluate"],
    "predict no run": lambda f: ["predict"],
    "sample bad --length": lambda f: ["sample", str(f["run"]), "--length", "-3"],
    "compare no recipe": lambda f: ["compare"],
    "export no run": lambda f: ["export"],
    "serve bad --port": lambda f: ["serve", str(f["run"]), "--port", "http"],
    "inspect no text": lambda f: ["inspect", str(f["run"])],
    "forecast no run": lambda f: ["forecast"],
    "studio bad --port": lambda f: ["studio", "--port", "eighty"],
    "studio bad --max-concurrent": lambda f: ["studio", "--max-concurrent", "0"],
    "demo unknown": lambda f: ["demo", "juggle"],
    "demo memory bad option": lambda f: ["demo", "memory", "--steps", "many"],
}

ERRORS: dict[str, Case] = {  # lstmkit refuses these: exactly one line
    "train missing recipe": lambda f: ["train", str(f["missing"] / "r.toml")],
    "train recipe not TOML": lambda f: ["train", str(f["not_toml"])],
    "train binary recipe": lambda f: ["train", str(f["binary_toml"])],
    "train recipe is a directory": lambda f: ["train", str(f["empty_dir"])],
    "train --task text binary recipe": lambda f: [
        "train",
        str(f["binary_toml"]),
        "--task",
        "text",
        "--train",
        str(f["csv"]),
    ],  # fmt: skip
    "train bad --set": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["csv"]),
        "--set",
        "train.lr",
    ],
    "train unknown --set field": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["csv"]),
        "--set",
        "train.speed=3",
        "--out",
        str(f["root"] / "o1"),
    ],  # fmt: skip
    "train text missing CSV": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["missing"] / "a.csv"),
    ],
    "train text binary CSV": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["binary_csv"]),
        "--out",
        str(f["root"] / "o2"),
    ],  # fmt: skip
    "train text empty CSV": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["empty_csv"]),
        "--out",
        str(f["root"] / "o3"),
    ],  # fmt: skip
    "train forecast binary CSV": lambda f: [
        "train",
        "--task",
        "forecast",
        "--train",
        str(f["binary_csv"]),
        "--out",
        str(f["root"] / "o4"),
    ],  # fmt: skip
    "train --resume without checkpoints": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["csv"]),
        "--out",
        str(f["empty_dir"]),
        "--resume",
    ],  # fmt: skip
    "train over a finished run": lambda f: [
        "train",
        "--task",
        "text",
        "--train",
        str(f["csv"]),
        "--out",
        str(f["run"]),
    ],
    "evaluate missing run": lambda f: ["evaluate", str(f["missing"])],
    "evaluate empty dir": lambda f: ["evaluate", str(f["empty_dir"])],
    "evaluate corrupt config": lambda f: ["evaluate", str(f["bad_config"])],
    "evaluate corrupt weights": lambda f: ["evaluate", str(f["bad_weights"])],
    "predict missing run": lambda f: ["predict", str(f["missing"]), "good"],
    "predict corrupt config": lambda f: ["predict", str(f["bad_config"]), "good"],
    "predict corrupt weights": lambda f: ["predict", str(f["bad_weights"]), "good"],
    "predict garbage weights": lambda f: ["predict", str(f["garbage_weights"]), "good"],
    "predict missing --file": lambda f: [
        "predict",
        str(f["run"]),
        "--file",
        str(f["missing"] / "t.txt"),
    ],
    "predict binary --file": lambda f: ["predict", str(f["run"]), "--file", str(f["binary_csv"])],
    "predict no text": lambda f: ["predict", str(f["run"])],
    "report missing README": lambda f: ["report", "--readme", str(f["missing"] / "R.md")],
    "report corrupt results": lambda f: [
        "report",
        "--readme",
        str(f["readme"]),
        "--results",
        str(f["results"]),
    ],
    "report --check corrupt results": lambda f: [
        "report",
        "--check",
        "--readme",
        str(f["readme"]),
        "--results",
        str(f["results"]),
    ],  # fmt: skip
    "report --check missing README": lambda f: [
        "report",
        "--check",
        "--readme",
        str(f["missing"] / "R.md"),
    ],
    "sample missing run": lambda f: ["sample", str(f["missing"])],
    "sample a classifier": lambda f: ["sample", str(f["run"])],
    "sample corrupt config": lambda f: ["sample", str(f["bad_config"])],
    "compare missing recipe": lambda f: ["compare", str(f["missing"] / "r.toml")],
    "compare recipe not TOML": lambda f: ["compare", str(f["not_toml"])],
    "compare binary recipe": lambda f: ["compare", str(f["binary_toml"])],
    "export nothing to write": lambda f: ["export", str(f["run"])],
    "export missing run": lambda f: [
        "export",
        str(f["missing"]),
        "--bundle",
        str(f["root"] / "b1"),
    ],
    "export corrupt config": lambda f: [
        "export",
        str(f["bad_config"]),
        "--bundle",
        str(f["root"] / "b2"),
    ],
    "export corrupt weights": lambda f: [
        "export",
        str(f["bad_weights"]),
        "--bundle",
        str(f["root"] / "b3"),
    ],
    "export onnx corrupt weights": lambda f: [
        "export",
        str(f["bad_weights"]),
        "--onnx",
        str(f["root"] / "m.onnx"),
    ],
    "serve missing run": lambda f: ["serve", str(f["missing"])],
    "serve empty dir": lambda f: ["serve", str(f["empty_dir"])],
    "serve corrupt config": lambda f: ["serve", str(f["bad_config"])],
    "serve corrupt weights": lambda f: ["serve", str(f["bad_weights"])],
    "serve --workers 0": lambda f: ["serve", str(f["run"]), "--workers", "0"],
    "serve --max-wait-ms": lambda f: ["serve", str(f["run"]), "--max-wait-ms", "5000"],
    "inspect missing run": lambda f: ["inspect", str(f["missing"]), "good"],
    "inspect corrupt config": lambda f: ["inspect", str(f["bad_config"]), "good"],
    "inspect corrupt weights": lambda f: ["inspect", str(f["bad_weights"]), "good"],
    "forecast missing run": lambda f: ["forecast", str(f["missing"]), "--data", str(f["csv"])],
    "forecast a classifier": lambda f: ["forecast", str(f["run"]), "--data", str(f["csv"])],
    "forecast corrupt config": lambda f: [
        "forecast",
        str(f["bad_config"]),
        "--data",
        str(f["binary_csv"]),
    ],
    "studio missing recipes": lambda f: ["studio", "--recipes", str(f["missing"]), "--port", "1"],
    "studio home is a file": lambda f: [
        "studio",
        "--home",
        str(f["csv"]),
        "--recipes",
        str(f["missing"]),
    ],
}


def _stderr_lines(
    case: Case, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(case(files))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err.splitlines()


@pytest.mark.parametrize("name", USAGE)
def test_argparse_errors_are_usage_then_one_line(
    name: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _stderr_lines(USAGE[name], files, capsys)
    assert code == 2
    assert lines[0].startswith("usage: lstmkit"), lines
    assert lines[-1].startswith("lstmkit") and ": error: " in lines[-1], lines
    assert not any(": error: " in line for line in lines[:-1]), lines


@pytest.mark.parametrize("name", ERRORS)
def test_errors_are_one_line_and_exit_2(
    name: str, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _stderr_lines(ERRORS[name], files, capsys)
    assert code == 2, lines
    assert len(lines) == 1, lines
    command = ERRORS[name](files)[0]
    assert lines[0].startswith(f"lstmkit {command}: error: "), lines
