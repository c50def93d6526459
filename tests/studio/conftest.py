"""Fixtures of the studio tests: a tiny Reuters-layout data set (3 topics, 60 words; a run on it
takes seconds) and a recipe folder with a tiny recipe, so that real ``lstmkit train`` runs are
quick and need no downloaded data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

TOPICS = ["grain", "money", "ships"]
WORDS = [f"w{i}" for i in range(60)]
TINY_RECIPE = """\
name = "tiny"
description = "3-topic toy newswires, a few seconds"

[data]
dataset = "reuters"
num_words = 63
maxlen = 30
validation_split = 0.25

[model]
embedding_dim = 8
cell = "lstm"
hidden_size = 8
pooling = "last"

[train]
optimizer = "adam"
lr = 0.01
batch_size = 16
epochs = 2
evaluate_every = 5
seed = 0
"""


def write_tiny_reuters(folder: Path, n: int = 400, seed: int = 0) -> Path:
    """``reuters.npz`` (+ word index, topic names) in Keras' layout: topic k's newswires mostly
    use the words of rank 20k+1 .. 20k+20, so a model can learn the topic."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.empty(n, dtype=object)
    y = rng.integers(0, len(TOPICS), n)
    for i in range(n):
        length = int(rng.integers(8, 30))
        own = rng.integers(1, 21, length) + 20 * int(y[i])
        noise = rng.integers(1, 61, length)
        x[i] = [int(a if rng.random() < 0.7 else b) for a, b in zip(own, noise, strict=True)]
    np.savez(folder / "reuters.npz", x=x, y=y.astype(np.int64))
    index = {w: i + 1 for i, w in enumerate(WORDS)}
    (folder / "reuters_word_index.json").write_text(json.dumps(index))
    (folder / "reuters_topics.json").write_text(json.dumps(TOPICS))
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_reuters(tmp_path_factory.mktemp("tiny-data"))


@pytest.fixture(scope="session")
def recipes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("recipes")
    (folder / "tiny.toml").write_text(TINY_RECIPE)
    return folder


@pytest.fixture(scope="session")
def run_env(tiny_data: Path) -> dict[str, str]:
    """Environment of the runs: the tiny data, one thread each."""
    return {"LSTMKIT_DATA": str(tiny_data), "OMP_NUM_THREADS": "1", "PYTHONPATH": _root()}


def _root() -> str:
    root = str(Path(__file__).resolve().parents[2])
    extra = os.environ.get("PYTHONPATH")
    return root + (os.pathsep + extra if extra else "")
