"""End to end through the CLI on real data: train -> results JSON -> evaluate -> predict -> resume;
and torchrun with 2 gloo processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lstmkit.cli import main
from lstmkit.data.resolve import ENV_VAR

ROOT = Path(__file__).resolve().parents[2]
REUTERS = str(ROOT / "lstmkit" / "recipes" / "reuters-seed002.toml")
TINY = [
    "--set",
    "max_steps=6",
    "--set",
    "batch_size=32",
    "--set",
    "hidden_size=16",
    "--set",
    "embedding_dim=16",
    "--no-progress",
]


def needs(name: str) -> pytest.MarkDecorator:
    """Skip (with the reason) unless $LSTMKIT_DATA holds the data file ``name``."""
    return pytest.mark.skipif(
        not (Path(os.environ.get(ENV_VAR, "/nonexistent")) / name).exists(),
        reason=f"{ENV_VAR} does not point at a directory with {name}",
    )


needs_data = needs("reuters.npz")


@needs_data
def test_train_record_evaluate_predict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the record names the commit the run STARTED from, even if HEAD moves while it trains
    from lstmkit.train import Trainer

    trained: list[bool] = []
    fit = Trainer.fit

    def fit_then_move_head(self: Trainer, *args: Any, **kwargs: Any) -> Any:
        out = fit(self, *args, **kwargs)
        trained.append(True)
        return out

    monkeypatch.setattr(Trainer, "fit", fit_then_move_head)
    monkeypatch.setattr(
        "lstmkit.experiment.git_commit", lambda: "d4e5f6-later" if trained else "a1b2c3-at-start"
    )
    run, results = tmp_path / "run", tmp_path / "results"
    assert main(["train", REUTERS, "--out", str(run), "--record", str(results), *TINY]) == 0
    assert "reuters-seed002: test accuracy" in capsys.readouterr().out
    for name in (
        "config.json",
        "vocab.json",
        "model.safetensors",
        "metrics.json",
        "history.jsonl",
        "curves.png",
    ):
        assert (run / name).exists(), name
    record = json.loads((results / "reuters-seed002.json").read_text())
    assert set(record) >= {"recipe", "metric", "value", "seconds", "commit", "command", "machine"}
    assert record["metric"] == "test_accuracy" and 0.0 <= record["value"] <= 1.0
    assert "--set max_steps=6" in record["command"]
    assert record["commit"] == "a1b2c3-at-start"
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["steps"] == 6 and metrics["test"]["examples"] == 2234

    assert main(["evaluate", str(run)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["accuracy"] == pytest.approx(metrics["test"]["accuracy"], abs=1e-9)

    assert main(["predict", str(run), "oil prices rose as opec cut crude output"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    topics = json.loads((Path(os.environ[ENV_VAR]) / "reuters_topics.json").read_text())
    assert line["label"] in topics and 0.0 < line["probability"] <= 1.0

    # a second run into the same directory without --resume refuses and keeps the first intact
    before = (run / "model.safetensors").read_bytes()
    assert main(["train", REUTERS, "--out", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (run / "model.safetensors").read_bytes() == before


def test_cli_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", str(tmp_path / "missing.toml")]) == 2
    assert "missing.toml does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nhidden_size = 0\n")
    assert main(["train", str(bad)]) == 2
    assert (
        "bad.toml: model.hidden_size: Input should be greater than or equal to 1"
        in capsys.readouterr().err
    )
    assert main(["predict", str(tmp_path), "hello"]) == 2
    assert "is not a run directory" in capsys.readouterr().err
    assert main(["train", REUTERS, "--resume", "--out", str(tmp_path / "none")]) == 2
    assert "no checkpoints to resume from" in capsys.readouterr().err


@needs_data
def test_torchrun_two_gloo_processes(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "lstmkit",
        "train",
        REUTERS,
        "--out",
        str(run),
        *TINY,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("reuters-seed002: test accuracy") == 2  # every rank reports
    rows = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [6]  # written once, by rank 0
    state = json.loads((run / "checkpoints" / "step-000000006" / "trainer.json").read_text())
    assert state["world_size"] == 2 and len(state["rng"]) == 2


def test_imdb_words_tokenises_like_the_dataset() -> None:
    from lstmkit.data.vocabulary import imdb_words

    assert imdb_words("It's GREAT!<br /><br />10/10 'really'") == [
        "it's",
        "great",
        "br",
        "br",
        "10",
        "10",
        "really",
    ]


def test_imdb_words_equal_the_runs_with_outer_apostrophes_stripped() -> None:
    """imdb_words finds in one regex what the definition says: every run of [a-z0-9'] with its
    outer apostrophes stripped, empty ones dropped -- on random strings of the tricky
    characters (apostrophe runs, capitals, non-ASCII, the <br /> marker)."""
    import random

    from lstmkit.data.vocabulary import TOKEN, imdb_words

    def by_definition(text: str) -> list[str]:
        runs = TOKEN.findall(text.lower().replace("<br />", " br "))
        return [w.strip("'") for w in runs if w.strip("'")]

    rng = random.Random(0)
    alphabet = ["a", "Z", "9", "'", "'", " ", "-", "\u00e9", ".", "<br />", "\n", "\u0130", "K"]
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        assert imdb_words(text) == by_definition(text), repr(text)
    assert imdb_words("'''") == [] and imdb_words("'a''b'") == ["a''b"]


needs_imdb = needs("imdb.npz")


@needs_imdb
def test_vocabulary_encodes_text_as_the_keras_loader_does() -> None:
    from lstmkit.data import get_word_index, load_imdb
    from lstmkit.data.vocabulary import Vocabulary

    (x_train, _), _ = load_imdb(num_words=5000, skip_top=10)
    vocab = Vocabulary.from_keras("imdb", 5000, 3, skip_top=10)
    full = {r + 3: w for w, r in get_word_index("imdb").items()}
    (x_all, _), _ = load_imdb()
    for limited, seq in zip(x_train[:50], x_all[:50], strict=True):
        text = " ".join(full[i] for i in seq[1:])  # the review's words, as text
        assert vocab.encode(text) == list(limited)


@needs_imdb
def test_main_demo_trains_exports_and_would_serve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "imdb", "--epochs", "1", "--no-serve", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "seed 003 model, 1 epochs: test accuracy" in text and "bundle:" in text
    metrics = json.loads((out / "run" / "metrics.json").read_text())
    assert metrics["test"]["examples"] == 25000 and metrics["test"]["accuracy"] > 0.75
    from lstmkit import load

    pred = load(out / "bundle").predict(
        ["a wonderful, moving film with superb acting", "awful, boring, a waste of time"]
    )
    assert [p["label"] for p in pred] == ["positive", "negative"]


def test_recorded_commands_hold_no_machine_paths(tmp_path: Path) -> None:
    import site

    from lstmkit.runs import portable_command

    pkg = site.getsitepackages()[0]
    cmd = f"lstmkit train --train {pkg}/statsmodels/x.csv --out {Path.cwd()}/runs/a"
    assert (
        portable_command(cmd)
        == "lstmkit train --train <site-packages>/statsmodels/x.csv --out runs/a"
    )
