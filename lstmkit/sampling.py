"""A finished character language model as a text generator: :func:`load_language_model` and
:func:`sample_stream`, the sampler that ``lstmkit sample`` (:func:`lstmkit.tasks.language_model.
sample_text`) and ``POST /v1/generate`` (:mod:`lstmkit.serve`) both run, so that one seed gives
one text whichever way it is asked for, streamed or not.

:func:`sample_stream` draws one character at a time exactly as
:meth:`lstmkit.models.LanguageModel.generate` does (the same forward passes, the same
``torch.multinomial`` draws from the same generator), and yields each id as soon as it is drawn:
a server can send it before the next is computed. The recurrent state is passed from each step
to the next inside the iterator, never stored in the model.

Serving imports this module and never the tasks (import-linter), which is why it lives here and
not in :mod:`lstmkit.tasks.language_model`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lstmkit.data.chars import CharVocabulary
from lstmkit.models import LanguageModel, LanguageModelConfig
from lstmkit.runs import load_weights, read_run_config

CHARS_FILE = "chars.json"


def load_language_model(run_dir: Path) -> tuple[LanguageModel, CharVocabulary, dict[str, Any]]:
    """Model (eval mode), vocabulary and config of a finished language-model run."""
    how = " (lstmkit sample needs a run of a task = 'language_model' recipe)"
    config = read_run_config(run_dir, "language_model", how)
    model = LanguageModel(LanguageModelConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    model.eval()
    return model, CharVocabulary.load(run_dir / CHARS_FILE), config


def check_sampling(model: LanguageModel, temperature: float, top_k: int | None) -> None:
    """ValueError unless ``temperature`` > 0 and ``top_k`` (when given) is in 1..vocab size."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= model.config.vocab_size:
        raise ValueError(f"top_k must be in 1..{model.config.vocab_size}, got {top_k}")


def sample_stream(
    model: LanguageModel,
    prime: Tensor,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[int]:
    """Yield ``length`` token ids sampled after the 1-D id sequence ``prime`` (model in eval
    mode), one per step, the same ids as :meth:`LanguageModel.generate` with the same generator.
    Each step runs under ``torch.no_grad`` on its own (grad mode is per thread: the iterator may
    be resumed from another thread than the one that started it)."""
    if prime.dim() != 1 or prime.numel() == 0:
        raise ValueError(
            f"prime must be a non-empty 1-D id sequence, got shape {tuple(prime.shape)}"
        )
    check_sampling(model, temperature, top_k)
    return _steps(model, prime, length, temperature, top_k, generator)


def _steps(
    model: LanguageModel,
    prime: Tensor,
    length: int,
    temperature: float,
    top_k: int | None,
    generator: torch.Generator | None,
) -> Iterator[int]:
    with torch.no_grad():
        logits, state = model(prime[None, :])
    last = logits[0, -1]  # (V,)
    for i in range(length):
        with torch.no_grad():
            scaled = last / temperature
            if top_k is not None:
                kth = torch.topk(scaled, top_k).values[-1]
                scaled = scaled.masked_fill(scaled < kth, float("-inf"))
            token = torch.multinomial(torch.softmax(scaled, -1), 1, generator=generator)
        yield int(token)
        if i + 1 < length:  # the state after the last character is never needed
            with torch.no_grad():
                logits, state = model(token[None, :], state)
            last = logits[0, -1]
