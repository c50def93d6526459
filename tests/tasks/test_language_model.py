"""Character language models: vocabulary, consecutive-chunk streams, the carried state (TBPTT),
training through a recipe, sampling, and seed 002's 'hell' -> 'ello' toy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.config import ConfigError, recipe_from_dict
from lstmkit.data.chars import CharVocabulary, StreamDataset, collate_stream, split_text
from lstmkit.demos.hello import train_hello
from lstmkit.experiment import run_recipe
from lstmkit.models import LanguageModel, LanguageModelConfig
from lstmkit.tasks.language_model import load_language_model, sample_text


def test_char_vocabulary_round_trip_and_unknown_character(tmp_path: Path) -> None:
    text = "한국어 LSTM, ça va? 🙂\n"
    vocab = CharVocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text
    assert list(vocab.chars) == sorted(set(text))
    vocab.save(tmp_path / "chars.json")
    assert CharVocabulary.load(tmp_path / "chars.json") == vocab
    with pytest.raises(
        ValueError, match=r"character 'x' at position 2 is not in the model's vocabulary"
    ):
        vocab.encode("LSx")
    (tmp_path / "bad.json").write_text('{"chars": ["ab"]}')
    with pytest.raises(ValueError, match="single characters"):
        CharVocabulary.load(tmp_path / "bad.json")


def test_split_text_is_contiguous() -> None:
    text = "".join(chr(65 + i % 26) for i in range(1000))
    tr, va, te = split_text(text, 0.1, 0.05)
    assert (len(tr), len(va), len(te)) == (850, 100, 50)
    assert tr + va + te == text
    with pytest.raises(ValueError, match="sum < 1"):
        split_text(text, 0.6, 0.5)


def test_streams_continue_row_by_row_and_split_across_ranks() -> None:
    ids = np.arange(24)
    ds = StreamDataset(ids, streams=2, bptt=3)
    assert ds.chunks == 3 and len(ds) == 6  # rows of 12: (12 - 1) // 3 chunks
    batches = list(ds.batch_sampler())
    assert batches == [[0, 1], [2, 3], [4, 5]]
    x0, _, y0 = collate_stream([ds[i] for i in batches[0]])
    x1, _, _ = collate_stream([ds[i] for i in batches[1]])
    assert x0.tolist() == [[0, 1, 2], [12, 13, 14]]
    assert y0.tolist() == [[1, 2, 3], [13, 14, 15]]
    assert x1.tolist() == [[3, 4, 5], [15, 16, 17]]  # row b continues where it stopped
    assert list(ds.batch_sampler(num_replicas=2, rank=1)) == [[1], [3], [5]]
    assert list(ds.batch_sampler().iter_from(2)) == [[4, 5]]
    with pytest.raises(ValueError, match="cannot be split evenly across 3 processes"):
        ds.batch_sampler(num_replicas=3)
    with pytest.raises(ValueError, match="too few for 8 streams"):
        StreamDataset(ids, streams=8, bptt=3)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_carried_state_equals_one_pass_over_the_whole_text(cell: str) -> None:
    """Two consecutive chunks, the first's state passed to the second == the concatenation in
    one pass: logits and final state within 1e-6; the module keeps no state of its own."""
    torch.manual_seed(0)
    model = LanguageModel(
        LanguageModelConfig(vocab_size=11, embedding_dim=5, cell=cell, hidden_size=7, num_layers=2)
    ).eval()
    x = torch.randint(0, 11, (3, 10))
    with torch.no_grad():
        whole, whole_state = model(x)
        first, state = model(x[:, :4])
        second, end_state = model(x[:, 4:], state)
        again, _ = model(x[:, 4:])  # no state passed: zeros, whatever ran before
        repeat, _ = model(x)
    assert float((torch.cat([first, second], 1) - whole).abs().max()) <= 1e-6
    ends = (end_state,) if isinstance(end_state, torch.Tensor) else end_state
    wholes = (whole_state,) if isinstance(whole_state, torch.Tensor) else whole_state
    assert [tuple(s.shape) for s in ends] == [(2, 3, 7)] * (2 if cell == "lstm" else 1)
    for a, b in zip(ends, wholes, strict=True):
        assert float((a - b).abs().max()) <= 1e-6
    assert float((again - second).abs().max()) > 1e-3  # without the carry it differs
    assert torch.equal(repeat, whole)  # a call never depends on the calls before it


def test_one_hot_input_and_tied_weights() -> None:
    one_hot = LanguageModel(LanguageModelConfig(vocab_size=4, embedding_dim=0, hidden_size=3))
    assert one_hot.embedding is None and one_hot.rnn.input_size == 4
    tied = LanguageModel(
        LanguageModelConfig(vocab_size=9, embedding_dim=6, hidden_size=6, tie_weights=True)
    )
    assert tied.head.weight is tied.embedding.weight  # type: ignore[union-attr]
    with pytest.raises(
        ValueError, match="tie_weights needs embedding_dim == hidden_size, got 5 and 6"
    ):
        LanguageModel(
            LanguageModelConfig(vocab_size=9, embedding_dim=5, hidden_size=6, tie_weights=True)
        )


def test_hello_toy_predicts_ello_and_writes_hello() -> None:
    model, result = train_hello(steps=150)
    assert result.predicted == "ello"
    assert result.generated == "hello"
    assert result.solved_at is not None and result.solved_at <= 150
    assert result.losses[-1] < 0.1 < result.losses[0]
    assert model.config.hidden_size == 3 and model.config.cell == "rnn"


def _lm_recipe(text_file: Path, **train: object) -> dict[str, object]:
    return {
        "name": "tiny-lm",
        "task": "language_model",
        "data": {
            "dataset": "chars",
            "chars": {
                "file": str(text_file),
                "bptt": 16,
                "valid_fraction": 0.1,
                "test_fraction": 0.1,
            },
        },
        "model": {"embedding_dim": 8, "hidden_size": 48},
        "train": {"lr": 0.01, "batch_size": 8, "eval_batch_size": 4, "epochs": 8, **train},
    }


def test_language_model_recipe_learns_a_text_and_samples_it(tmp_path: Path) -> None:
    text_file = tmp_path / "verse.txt"
    text_file.write_text("the cat sat on the mat. " * 150, encoding="utf-8")
    recipe = recipe_from_dict(_lm_recipe(text_file))
    metrics = run_recipe(recipe, {}, tmp_path / "run", progress=False, record=tmp_path)
    # a uniform guess over the 12 characters costs ln 12 = 2.48 nats; the text is periodic
    assert metrics["valid"]["loss"] < 0.3
    assert metrics["test"]["bits_per_token"] == pytest.approx(metrics["test"]["loss"] / np.log(2))
    result = json.loads((tmp_path / "tiny-lm.json").read_text())
    assert result["metric"] == "val_loss_nats_per_char"
    assert result["value"] == pytest.approx(metrics["valid"]["loss"])
    for name in ("chars.json", "model.safetensors", "loss_vs_minutes.png", "curves.png"):
        assert (tmp_path / "run" / name).exists()
    a = sample_text(tmp_path / "run", "the c", 30, temperature=0.5, seed=3)
    b = sample_text(tmp_path / "run", "the c", 30, temperature=0.5, seed=3)
    assert a == b and a.startswith("the c") and len(a) == 35
    greedy = sample_text(tmp_path / "run", "the c", 18, top_k=1, seed=1)
    assert greedy == "the cat sat on the mat."
    rows = [json.loads(r) for r in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert all(r["elapsed_s"] >= 0 for r in rows)


def test_sample_cli_and_its_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text_file = tmp_path / "t.txt"
    text_file.write_text("abcabcabd " * 100, encoding="utf-8")
    run_recipe(
        recipe_from_dict(_lm_recipe(text_file, epochs=1)), {}, tmp_path / "run", progress=False
    )
    assert (
        main(["sample", str(tmp_path / "run"), "--prime", "ab", "--length", "5", "--seed", "0"])
        == 0
    )
    assert capsys.readouterr().out.startswith("ab")
    assert main(["sample", str(tmp_path / "run"), "--prime", "aZ", "--length", "5"]) == 2
    assert "character 'Z' at position 1 is not in the model's vocabulary" in capsys.readouterr().err
    assert main(["sample", str(tmp_path / "run"), "--temperature", "0"]) == 2
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "config.json").write_text('{"task": "classify"}')
    with pytest.raises(ValueError, match="not a .language_model. run"):
        load_language_model(tmp_path / "cls")


def test_task_and_dataset_must_agree() -> None:
    with pytest.raises(ConfigError, match="does not fit task 'classify'"):
        recipe_from_dict({"task": "classify", "data": {"dataset": "chars", "chars": {}}})
    # without a task the data set decides it
    assert recipe_from_dict({"data": {"dataset": "chars", "chars": {}}}).task == "language_model"
    with pytest.raises(ConfigError, match=r"model\.pooling: Extra inputs are not permitted"):
        recipe_from_dict(
            {
                "task": "language_model",
                "data": {"dataset": "chars", "chars": {}},
                "model": {"pooling": "max"},
            }
        )


def test_time_budget_stops_training(tmp_path: Path) -> None:
    text_file = tmp_path / "t.txt"
    text_file.write_text("abcd" * 2000, encoding="utf-8")
    recipe = recipe_from_dict(
        _lm_recipe(text_file, epochs=1000, max_minutes=0.002, schedule="cosine")
    )
    metrics = run_recipe(recipe, {}, tmp_path / "run", progress=False)
    rows = [json.loads(r) for r in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert rows[-1]["epoch"] < 1000
    assert metrics["steps"] < 1000 * 50
    assert rows[-1]["elapsed_s"] >= 0.12
    # the cosine schedule follows the time budget: the rate has decayed when it runs out
    assert rows[-1]["lr"] < 0.01 * 0.01
