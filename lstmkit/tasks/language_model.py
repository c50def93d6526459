"""Character-level language models from a recipe: train (truncated BPTT, state carried across
chunks), evaluate, sample. What ``lstmkit train`` runs for ``task = "language_model"`` and what
``lstmkit sample`` reads.

Run directory (as for classifiers, see :mod:`lstmkit.runs`)::

    config.json        the recipe, the model architecture, ``"task": "language_model"``
    chars.json         the character vocabulary
    model.safetensors  final weights (the best validation loss's with early stopping)
    metrics.json       validation / test loss in nats and bits per character, seconds
    history.*, curves.png, loss_vs_minutes.png, checkpoints/

The vocabulary is every character of the whole text (as char-rnn builds it), so the validation
and test parts never hold an unknown character; the parts themselves are contiguous and unseen.

``--resume`` continues from the last checkpoint with the weights, optimizer, position and the
training streams' carried hidden state exact (the state is passed in and returned by
:class:`lstmkit.models.LanguageModel`; the Trainer carries it and checkpoints it), so a resumed
run equals an uninterrupted one. With ``train.max_minutes`` the run stops when the budget is
spent, so the number of steps depends on the machine's speed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lstmkit.config import CharsSource, Recipe
from lstmkit.data.chars import CharVocabulary, StreamDataset, collate_stream, split_text
from lstmkit.data.resolve import resolve
from lstmkit.errors import ConfigError, DataError
from lstmkit.models import LanguageModel, LanguageModelConfig
from lstmkit.objectives import LanguageModeling
from lstmkit.plots import pyplot, save_png
from lstmkit.sampling import CHARS_FILE, load_language_model, sample_stream
from lstmkit.tasks.base import Outcome, Record, Setup, took
from lstmkit.train import Trainer

# eval streams hold at least this many chunks each, so the state warms up on most of the text
EVAL_CHUNKS_PER_STREAM = 8


@dataclass
class CharData:
    """The vocabulary and the train / validation / test streams of a character text."""

    vocab: CharVocabulary
    train: StreamDataset
    valid: StreamDataset | None
    test: StreamDataset | None


def read_text(source: CharsSource) -> str:
    """The text of ``source.file``: a path to an existing file, else a data-file name resolved
    like every data set (``$LSTMKIT_DATA`` -> cache -> download)."""
    path = Path(source.file).expanduser()
    if not path.is_file():
        path = resolve(source.file)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise DataError(f"{path}: not UTF-8 text (byte {err.start}, line {line})") from None
    if not text:
        raise DataError(f"{path} is empty")
    return text


def _eval_streams(n_tokens: int, bptt: int, wanted: int, world: int) -> int:
    streams = max(1, min(wanted, n_tokens // (bptt * EVAL_CHUNKS_PER_STREAM + 1)))
    return max(world, streams - streams % world)


def prepare_chars(recipe: Recipe, world_size: int = 1) -> CharData:
    """Read, split and encode the recipe's text into streams (train: ``batch_size`` streams)."""
    source = recipe.data.chars
    if source is None:
        raise ConfigError('dataset "chars" needs a [data.chars] table')
    text = read_text(source)
    vocab = CharVocabulary.from_text(text)  # all characters, also with data.limit
    if recipe.data.limit:
        text = text[: recipe.data.limit]
    tr, va, te = split_text(text, source.valid_fraction, source.test_fraction)
    cfg = recipe.train

    def stream(part: str, streams: int) -> StreamDataset | None:
        if not part:
            return None
        return StreamDataset(vocab.encode(part), streams, source.bptt)

    train = stream(tr, cfg.batch_size)
    assert train is not None
    ev = cfg.eval_batch_size
    valid = stream(va, _eval_streams(len(va), source.bptt, ev, world_size)) if va else None
    test = stream(te, _eval_streams(len(te), source.bptt, ev, world_size)) if te else None
    return CharData(vocab, train, valid, test)


def build_language_model(recipe: Recipe, vocab: CharVocabulary) -> LanguageModel:
    """The recipe's language model over ``vocab``."""
    cfg = recipe.language_model.model_copy(update={"vocab_size": vocab.size})
    return LanguageModel(LanguageModelConfig.model_validate(cfg.model_dump()))


class LanguageModelTask:
    """Character-level language models (see the module docstring)."""

    name = "language_model"
    description = "a character-level language model on a text file (truncated BPTT)"

    def check(self, recipe: Recipe) -> None:
        """Nothing beyond the recipe's own validation."""

    def setup(self, recipe: Recipe, *, resume: bool, given: frozenset[str] | None = None) -> Setup:
        """Read the text, build the character vocabulary and the streams, build the model."""
        data = prepare_chars(recipe)
        model = build_language_model(recipe, data.vocab)
        vocab = data.vocab
        return Setup(
            model=model,
            train=data.train,
            valid=data.valid,
            trainer={"objective": LanguageModeling(), "collate": collate_stream},
            config={"model": model.config.to_dict()},
            data=data,
            save_inputs=lambda run_dir: vocab.save(run_dir / CHARS_FILE),
            facts={"train_tokens_per_epoch": data.train.tokens},
        )

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """Validation and test loss in nats and bits per character."""
        data: CharData = setup.data
        val = trainer.evaluate(data.valid, data.valid.lengths) if data.valid else None
        test = trainer.evaluate(data.test, data.test.lengths) if data.test else None
        record = None
        if val is not None:
            record = Record(
                "val_loss_nats_per_char",
                val["loss"],
                {
                    "val_bits_per_char": val["bits_per_token"],
                    "test_loss_nats_per_char": test["loss"] if test else None,
                    "test_bits_per_char": test["bits_per_token"] if test else None,
                },
            )
        return Outcome(
            {"valid": val, "test": test},
            record,
            lambda run_dir: plot_loss_vs_minutes(
                history, run_dir / "loss_vs_minutes.png", recipe.name
            ),
        )

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """Validation and test loss, and how to sample."""
        parts = [
            f"{split} loss {m['loss']:.4f} nats/char ({m['bits_per_token']:.3f} bits/char)"
            for split, m in (("validation", metrics["valid"]), ("test", metrics["test"]))
            if m
        ]
        return (
            f"{name}: {', '.join(parts)} {took(metrics, out)}; "
            f"sample: lstmkit sample {out} --prime ..."
        )

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Validation and test loss of the finished run."""
        return evaluate_language_model_run(run_dir)

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """Two steps on the first 20,000 characters, short chunks, batches of 4."""
        bptt = recipe.data.chars.bptt if recipe.data.chars else 128
        return [
            "train.max_steps=2",
            "train.epochs=1",
            "train.evaluate_every=0",
            "data.limit=20000",
            f"data.chars.bptt={min(bptt, 32)}",
            "train.batch_size=4",
            "train.eval_batch_size=4",
        ]


def plot_loss_vs_minutes(history: list[dict[str, Any]], path: Path, title: str) -> None:
    """Validation (and training) loss in nats/char against minutes of training (PNG)."""
    plt = pyplot()

    fig, ax = plt.subplots(figsize=(7, 4))
    for split, style in (("train", "o-"), ("val", "s-")):
        rows = [r for r in history if r["split"] == split and "elapsed_s" in r]
        if rows:
            ax.plot(
                [r["elapsed_s"] / 60 for r in rows],
                [r["loss"] for r in rows],
                style,
                label=split,
                markersize=3,
            )
    ax.set_xlabel("minutes of training")
    ax.set_ylabel("loss (nats/char)")
    ax.set_title(f"{title}: loss against time")
    secondary = ax.secondary_yaxis("right", functions=(_to_bits, _to_nats))
    secondary.set_ylabel("bits/char")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def _to_bits(nats: Any) -> Any:
    return nats / math.log(2)


def _to_nats(bits: Any) -> Any:
    return bits * math.log(2)


def sample_text(
    run_dir: Path,
    prime: str,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int | None = None,
) -> str:
    """``prime`` followed by ``length`` sampled characters (reproducible with ``seed``)."""
    if not prime:
        raise ConfigError("--prime must not be empty (give the first characters, e.g. 'ROMEO:')")
    model, vocab, _ = load_language_model(run_dir)
    generator = torch.Generator()
    if seed is not None:
        generator.manual_seed(seed)
    else:
        generator.seed()
    ids = sample_stream(
        model,
        torch.from_numpy(vocab.encode(prime)),
        length,
        temperature=temperature,
        top_k=top_k,
        generator=generator,
    )
    return prime + vocab.decode(list(ids))


def evaluate_language_model_run(run_dir: Path) -> dict[str, Any]:
    """Validation and test loss of a finished run (same data preparation as training)."""
    model, _, config = load_language_model(run_dir)
    recipe = Recipe.model_validate(config["recipe"])
    data = prepare_chars(recipe)
    trainer = Trainer(
        model, recipe.train, objective=LanguageModeling(), collate=collate_stream, progress=False
    )
    out: dict[str, Any] = {}
    for name, ds in (("valid", data.valid), ("test", data.test)):
        if ds is not None:
            out[name] = trainer.evaluate(ds, ds.lengths)
    return out
