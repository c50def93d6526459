"""``lstmkit demo hello``: seed 002's character-level RNN, 'hell' -> 'ello'.

Exactly the toy of the lecture note (after Karpathy's "The Unreasonable Effectiveness of Recurrent
Neural Networks", whose figure it redraws): the vocabulary is h, e, l, o as one-hot vectors; a
SimpleRNN (tanh, ``h_t = tanh(W_xh x_t + W_hh h_{t-1} + b)``, ``y_t = W_hy h_t``) with a hidden
layer of 3 units reads 'hell' and is trained to predict the next character at every step,
'ello'. The second 'l' must be followed by 'o' while the first is followed by 'l': the hidden
state has to remember what came before. Training runs through the same Trainer as every recipe
(LanguageModeling objective, one stream of one 4-character chunk, one Adam step per epoch, each
epoch evaluated on the same characters) for a fixed number of steps; the result says at which step
the prediction first read 'ello', and greedy generation from 'h' then writes 'hello'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lstmkit.config import TrainConfig
from lstmkit.data.chars import CharVocabulary, StreamDataset, collate_stream
from lstmkit.models import LanguageModel, LanguageModelConfig
from lstmkit.objectives import LanguageModeling
from lstmkit.train import Trainer

WORD = "hello"


@dataclass
class HelloResult:
    """What the toy learned: the per-step prediction for 'hell', the greedy continuation of 'h',
    the validation loss after each training step and the first step that predicted 'ello'."""

    predicted: str
    generated: str
    losses: list[float] = field(default_factory=list)
    solved_at: int | None = None


def train_hello(
    hidden_size: int = 3, steps: int = 200, lr: float = 0.05, seed: int = 0
) -> tuple[LanguageModel, HelloResult]:
    """Train the one-hot SimpleRNN for ``steps`` Adam steps on 'hell' -> 'ello' (one step per
    epoch; each epoch is evaluated on the same four characters)."""
    vocab = CharVocabulary.from_text(WORD)
    data = StreamDataset(vocab.encode(WORD), streams=1, bptt=len(WORD) - 1)
    torch.manual_seed(seed)
    model = LanguageModel(
        LanguageModelConfig(
            vocab_size=vocab.size, embedding_dim=0, cell="rnn", hidden_size=hidden_size
        )
    )
    cfg = TrainConfig(optimizer="adam", lr=lr, batch_size=1, epochs=steps, seed=seed)
    trainer = Trainer(
        model, cfg, objective=LanguageModeling(), collate=collate_stream, progress=False
    )
    history = trainer.fit(data, data.lengths, data, data.lengths)
    val = [r for r in history if r["split"] == "val"]
    solved = next((r["step"] for r in val if r["accuracy"] == 1.0), None)
    model.eval()
    x, _, _ = collate_stream([data[0]])
    with torch.no_grad():
        logits, _ = model(x)  # from zeros, as every epoch's evaluation
    predicted = vocab.decode(logits[0].argmax(-1))
    greedy = model.generate(torch.from_numpy(vocab.encode("h")), len(WORD) - 1, temperature=1e-6)
    result = HelloResult(
        predicted=predicted,
        generated="h" + vocab.decode(greedy.numpy()),
        losses=[r["loss"] for r in val],
        solved_at=solved,
    )
    return model, result


def hello_table(result: HelloResult) -> list[tuple[str, str]]:
    """Rows (input char, predicted next char) for printing."""
    return list(zip(WORD[:-1], result.predicted, strict=False))
